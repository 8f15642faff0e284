"""The raw fast path of HTTP checks: what it takes, what it sends, and that every outcome is the one
aiohttp gives for the same check (the checker with a connection limit never takes the fast path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fao.prober.checks.http import HttpChecker
from fao.prober.checks.http_fast import _status, eligible
from fao.schemas import ErrorKind, HttpCheck

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _spec(url: str = "http://a.example/", **overrides: Any) -> HttpCheck:
    return HttpCheck.model_validate({"url": url, **overrides})


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"HTTP/1.1 200 OK", 200),
        (b"HTTP/1.0 404 Not Found\r\nServer: x", 404),
        (b"HTTP/1.1 503", 503),
        (b"HTTP/2 200", None),
        (b"HTTP/1.1 20", None),
        (b"HTTP/1.1 2000 OK", None),
        (b"HTTP/1.1 abc OK", None),
        (b"THIS IS NOT HTTP", None),
    ],
)
def test_only_http_1_status_lines_are_read(line: bytes, status: int | None) -> None:
    assert _status(line) == status


@pytest.mark.parametrize(
    ("overrides", "headers", "fast"),
    [
        ({}, None, True),
        ({"method": "HEAD"}, None, True),
        ({"url": "https://a.example/"}, None, True),
        ({"verify_tls": False, "url": "https://a.example/"}, None, True),
        ({}, {"X-Fao": "1"}, True),
        ({"method": "POST"}, None, False),
        ({"body": "x", "method": "PUT"}, None, False),
        ({"keyword": "ok"}, None, False),
        ({"json_path": "$.status"}, None, False),
        ({"client_cert": "/etc/fao/client.pem"}, None, False),
        ({"url": "http://[::1]:8080/"}, None, False),
        ({"url": "http://fao:secret@a.example/"}, None, False),
        ({}, {"X-Fao": "a\r\nInjected: 1"}, False),
    ],
)
def test_status_only_get_and_head_take_the_fast_path(
    overrides: dict[str, Any], headers: dict[str, str] | None, fast: bool
) -> None:
    assert eligible(_spec(**({"url": "http://a.example/"} | overrides)), headers) is fast


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Starts asyncio servers on 127.0.0.1 with a handler; returns their port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_the_request_is_written_once_with_host_agent_close_and_the_checks_headers(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    port = await raw_server(handle)
    checker = HttpChecker(user_agent="fao-test")
    try:
        outcome = await checker.run(
            _spec(f"http://127.0.0.1:{port}/health/ready?deep=1", headers={"X-Fao": "yes"}), 5.0
        )
    finally:
        await checker.aclose()
    assert outcome.ok
    assert outcome.http_status == 204
    request = seen[0].decode().split("\r\n")
    assert request[0] == "GET /health/ready?deep=1 HTTP/1.1"
    assert {f"Host: 127.0.0.1:{port}", "User-Agent: fao-test", "Connection: close", "X-Fao: yes"} <= set(
        request
    )
    assert not any(line.lower().startswith("accept-encoding") for line in request)  # not aiohttp's request
    assert outcome.observations is not None
    assert outcome.observations.connect_ms is not None
    assert outcome.observations.first_byte_ms is not None
    assert outcome.observations.dns_ms is None  # an IP literal: no lookup


async def test_the_timeout_is_reported_once_without_a_second_attempt(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await asyncio.sleep(2)
        writer.close()

    port = await raw_server(silent)
    checker = HttpChecker()
    started = time.monotonic()
    try:
        outcome = await checker.run(_spec(f"http://127.0.0.1:{port}/"), 0.3)
    finally:
        await checker.aclose()
    assert time.monotonic() - started < 1.0
    assert (outcome.error_kind, outcome.detail) == (ErrorKind.TIMEOUT, "timed out after 0.3s")
    assert connections == 1


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)
    writer.write(b"THIS IS NOT HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)
    writer.close()


async def test_every_outcome_is_the_one_aiohttp_gives(
    base_url: str, closed_port: int, raw_server: Callable[[Handler], Awaitable[int]]
) -> None:
    """Up, unexpected status, redirects followed or not, a redirect loop, refused, not HTTP, hung
    up: same ok, error kind, status and detail through the fast path as through aiohttp alone."""
    garbage, hang_up = await raw_server(_garbage), await raw_server(_hang_up)
    specs = [
        _spec(f"{base_url}/ok"),
        _spec(f"{base_url}/ok", method="HEAD"),
        _spec(f"{base_url}/status/503"),
        _spec(f"{base_url}/status/503", expected_status=[503]),
        _spec(f"{base_url}/redirect"),
        _spec(f"{base_url}/redirect", follow_redirects=False, expected_status=[200]),
        _spec(f"{base_url}/loop"),
        _spec(f"http://127.0.0.1:{closed_port}/"),
        _spec(f"http://127.0.0.1:{garbage}/"),
        _spec(f"http://127.0.0.1:{hang_up}/"),
    ]
    fast, plain = HttpChecker(), HttpChecker(connection_limit=10_000)
    try:
        for spec in specs:
            a, b = await fast.run(spec, 5.0), await plain.run(spec, 5.0)
            assert (a.ok, a.error_kind, a.http_status, a.detail) == (
                b.ok,
                b.error_kind,
                b.http_status,
                b.detail,
            ), spec
    finally:
        await fast.aclose()
        await plain.aclose()
