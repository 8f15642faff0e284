"""For the checkers that open their own sockets: name resolution timed on its own (phase timings)
and a close that cannot hang."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time

from fao.prober.checks.contract import elapsed_ms

CLOSE_WAIT = 0.5


async def resolve(host: str, port: int) -> tuple[str, float]:
    """The first address of ``host`` (TCP) and the milliseconds the lookup took.

    Raises ``socket.gaierror`` when the name does not resolve (``classify_os_error`` makes it ``DNS``).
    """
    started = time.perf_counter()
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    address = str(infos[0][4][0])
    return address, elapsed_ms(started)


async def close_stream(writer: asyncio.StreamWriter | None) -> None:
    """Close a check's connection without ever hanging: at most ``CLOSE_WAIT`` seconds for a clean
    close, then the transport is aborted. (After a TLS upgrade cancelled half-way the stream never
    learns that its socket closed, so waiting for it would hang.)"""
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT):
            await writer.wait_closed()
    writer.transport.abort()
