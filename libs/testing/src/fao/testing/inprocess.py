"""Run a service inside the test's event loop (faster than a process; no SIGKILL semantics)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fao.runtime.service import ServiceApp, serve


@asynccontextmanager
async def serving(svc: ServiceApp, timeout: float = 20.0) -> AsyncIterator[ServiceApp]:  # noqa: ASYNC109  # a start-up deadline
    """Start ``svc`` with ``serve``, yield once it consumes, stop it cleanly on exit."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(svc, stop, ready), name=f"serve-{svc.name}")
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        if task in done:
            task.result()  # re-raise the start-up error
        task.cancel()
        raise AssertionError(f"{svc.name} did not start within {timeout}s")
    try:
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
