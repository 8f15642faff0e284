"""TCP connect checks: up when the connection is accepted within the timeout; closed at once."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fao.prober.checks.contract import Outcome, classify_os_error, describe_exception
from fao.schemas import ErrorKind, TcpCheck


class TcpChecker:
    """Runs ``TcpCheck`` specs. Holds no resources."""

    async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """Connect to ``host:port`` (resolving the name counts against ``timeout``), then close."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(spec.host, spec.port)
        except TimeoutError:
            elapsed = (time.perf_counter() - started) * 1000.0
            return Outcome.failure(ErrorKind.TIMEOUT, f"timed out after {timeout:g}s", elapsed)
        except OSError as exc:
            kind, detail = classify_os_error(exc)
            return Outcome.failure(kind, detail, (time.perf_counter() - started) * 1000.0)
        except Exception as exc:  # translated to data at this boundary
            elapsed = (time.perf_counter() - started) * 1000.0
            return Outcome.failure(ErrorKind.INTERNAL, describe_exception(exc), elapsed)
        latency = (time.perf_counter() - started) * 1000.0
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome.success(latency)

    async def aclose(self) -> None:
        return None
