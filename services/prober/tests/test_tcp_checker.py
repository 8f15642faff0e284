"""The TCP checker: accepted connection is up; refusals and resolver errors are classified."""

from __future__ import annotations

import asyncio
import errno
import socket

from fao.prober.checks.contract import classify_os_error
from fao.prober.checks.tcp import TcpChecker
from fao.schemas import ErrorKind, TcpCheck


async def test_accepted_connection_is_up() -> None:
    accepted = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await TcpChecker().run(TcpCheck(host="127.0.0.1", port=port), timeout=5.0)
        await asyncio.wait_for(accepted.wait(), 5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.ok
    assert outcome.error_kind is ErrorKind.NONE
    assert outcome.http_status is None
    assert outcome.latency_ms > 0.0


async def test_closed_port_is_connection_refused(closed_port: int) -> None:
    outcome = await TcpChecker().run(TcpCheck(host="127.0.0.1", port=closed_port), timeout=5.0)
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED
    assert outcome.detail == "connection refused"


async def test_names_are_resolved(closed_port: int) -> None:
    """``localhost`` goes through the resolver and still reaches the (closed) loopback port."""
    outcome = await TcpChecker().run(TcpCheck(host="localhost", port=closed_port), timeout=5.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED


def test_resolver_errors_are_dns_failures() -> None:
    kind, detail = classify_os_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert kind is ErrorKind.DNS
    assert detail == "DNS lookup failed: Name or service not known"


def test_refusal_reported_as_plain_oserror_is_still_refused() -> None:
    """asyncio reports several failed addresses as one OSError carrying the shared errno."""
    kind, _ = classify_os_error(OSError(errno.ECONNREFUSED, "Multiple exceptions: ..."))
    assert kind is ErrorKind.CONNECTION_REFUSED


def test_other_socket_errors_are_connection_errors() -> None:
    kind, detail = classify_os_error(OSError(errno.ENETUNREACH, "Network is unreachable"))
    assert kind is ErrorKind.CONNECTION_ERROR
    assert detail == "OSError: [Errno 101] Network is unreachable"
