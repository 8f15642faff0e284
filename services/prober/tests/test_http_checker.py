"""The HTTP checker against a real aiohttp.web server on 127.0.0.1: every outcome is data."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from fao.prober.checks.http import HttpChecker
from fao.schemas import ErrorKind, HttpCheck


def _spec(url: str, **overrides: Any) -> HttpCheck:
    return HttpCheck.model_validate({"url": url, **overrides})


@pytest.fixture(scope="module")
async def checker() -> AsyncIterator[HttpChecker]:
    checker = HttpChecker()
    yield checker
    await checker.aclose()


async def test_expected_status_is_up(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/ok"), timeout=5.0)
    assert outcome.ok
    assert outcome.error_kind is ErrorKind.NONE
    assert outcome.http_status == 200
    assert outcome.detail == ""
    assert 0.0 < outcome.latency_ms < 5000.0


async def test_unexpected_status_is_http_status_with_short_detail(
    checker: HttpChecker, base_url: str
) -> None:
    outcome = await checker.run(_spec(f"{base_url}/status/503"), timeout=5.0)
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.HTTP_STATUS
    assert outcome.detail == "HTTP 503"
    assert outcome.http_status == 503


async def test_custom_expected_status_list_is_honoured(checker: HttpChecker, base_url: str) -> None:
    assert (await checker.run(_spec(f"{base_url}/status/503", expected_status=[503]), 5.0)).ok
    outcome = await checker.run(_spec(f"{base_url}/ok", expected_status=[204]), 5.0)
    assert outcome.error_kind is ErrorKind.HTTP_STATUS
    assert outcome.detail == "HTTP 200"


async def test_keyword_present_is_up(checker: HttpChecker, base_url: str) -> None:
    assert (await checker.run(_spec(f"{base_url}/ok", keyword="fao"), 5.0)).ok


async def test_keyword_missing_is_keyword_failure(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/ok", keyword="maintenance"), 5.0)
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert outcome.detail == "keyword 'maintenance' not found"
    assert outcome.http_status == 200


async def test_keyword_absent_rule_fails_when_keyword_is_present(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/ok", keyword="hello", keyword_absent=True), 5.0)
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert outcome.detail == "keyword 'hello' present"


async def test_keyword_absent_rule_holds_when_keyword_is_missing(checker: HttpChecker, base_url: str) -> None:
    assert (await checker.run(_spec(f"{base_url}/ok", keyword="error", keyword_absent=True), 5.0)).ok


async def test_keyword_is_searched_in_the_first_mebibyte_only(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/big", keyword="needle"), 5.0)
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert outcome.detail == "keyword 'needle' not found in the first 1 MiB"


async def test_keyword_is_matched_in_the_declared_charset(checker: HttpChecker, base_url: str) -> None:
    """Thai pages served as TIS-620 are decoded before searching."""
    assert (await checker.run(_spec(f"{base_url}/thai", keyword="ชาวโลก"), 5.0)).ok


async def test_total_timeout_is_timeout_failure(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/slow"), timeout=0.2)
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.detail == "timed out after 0.2s"
    assert 150.0 <= outcome.latency_ms < 2000.0


async def test_closed_port_is_connection_refused(checker: HttpChecker, closed_port: int) -> None:
    outcome = await checker.run(_spec(f"http://127.0.0.1:{closed_port}/"), 5.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED
    assert outcome.detail == f"connection refused by 127.0.0.1:{closed_port}"
    assert outcome.http_status is None


async def test_redirects_are_followed_by_default(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/redirect", keyword="hello"), 5.0)
    assert outcome.ok
    assert outcome.http_status == 200


async def test_redirect_not_followed_reports_the_redirect_status(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/redirect", follow_redirects=False), 5.0)
    assert outcome.ok  # 302 is inside the default 200..399
    assert outcome.http_status == 302
    strict = await checker.run(
        _spec(f"{base_url}/redirect", follow_redirects=False, expected_status=[200]), 5.0
    )
    assert strict.error_kind is ErrorKind.HTTP_STATUS
    assert strict.detail == "HTTP 302"


async def test_redirect_loop_is_protocol_failure(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/loop"), 5.0)
    assert outcome.error_kind is ErrorKind.PROTOCOL
    assert outcome.detail.startswith("too many redirects")


async def test_method_headers_and_body_are_sent(checker: HttpChecker, base_url: str) -> None:
    spec = _spec(
        f"{base_url}/echo",
        method="POST",
        headers={"X-Fao": "yes"},
        body="ping",
        keyword='"method": "POST", "x_fao": "yes", "body": "ping"',
    )
    outcome = await checker.run(spec, 5.0)
    assert outcome.ok, outcome.detail


async def test_head_request_checks_status_only(checker: HttpChecker, base_url: str) -> None:
    outcome = await checker.run(_spec(f"{base_url}/ok", method="HEAD"), 5.0)
    assert outcome.ok
    assert outcome.http_status == 200


async def test_cookies_are_not_carried_between_checks(checker: HttpChecker, base_url: str) -> None:
    assert (await checker.run(_spec(f"{base_url}/set-cookie"), 5.0)).ok
    outcome = await checker.run(_spec(f"{base_url}/cookies", keyword="cookies=[]"), 5.0)
    assert outcome.ok, outcome.detail


class _FailingResolver(AbstractResolver):
    """A resolver that knows no names, like a DNS server answering NXDOMAIN."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:  # fmt: skip
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_unresolvable_name_is_dns_failure() -> None:
    checker = HttpChecker(resolver=_FailingResolver())
    try:
        outcome = await checker.run(_spec("http://portal.example.invalid/"), 5.0)
    finally:
        await checker.aclose()
    assert outcome.error_kind is ErrorKind.DNS
    assert outcome.detail == "DNS lookup failed for portal.example.invalid: Name or service not known"


async def test_malformed_http_response_is_protocol_failure(checker: HttpChecker) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await checker.run(_spec(f"http://127.0.0.1:{port}/"), 5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.error_kind is ErrorKind.PROTOCOL
    assert "\n" not in outcome.detail
    assert len(outcome.detail) <= 200


async def test_https_to_a_plain_port_is_a_tls_failure_in_plain_words(checker: HttpChecker) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await checker.run(_spec(f"https://127.0.0.1:{port}/"), 5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail.startswith(f"TLS handshake with 127.0.0.1:{port} failed: "), outcome.detail
    assert "object at 0x" not in outcome.detail


async def test_server_closing_without_answer_is_connection_error(checker: HttpChecker) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await checker.run(_spec(f"http://127.0.0.1:{port}/"), 5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.error_kind is ErrorKind.CONNECTION_ERROR
    assert outcome.detail.startswith("ServerDisconnectedError")


@pytest.fixture(scope="module")
async def tls_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """An HTTPS server with a self-signed certificate (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: ASYNC221 - one-off fixture set-up, nothing else runs yet
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="secure hello")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"https://{host}:{port}/"
    await runner.cleanup()


async def test_untrusted_certificate_is_tls_failure(checker: HttpChecker, tls_url: str) -> None:
    outcome = await checker.run(_spec(tls_url), 5.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert "certificate" in outcome.detail.lower()


async def test_tls_verification_can_be_turned_off(checker: HttpChecker, tls_url: str) -> None:
    outcome = await checker.run(_spec(tls_url, verify_tls=False, keyword="secure"), 5.0)
    assert outcome.ok, outcome.detail


async def test_checker_reopens_its_session_after_aclose(base_url: str) -> None:
    checker = HttpChecker()
    assert (await checker.run(_spec(f"{base_url}/ok"), 5.0)).ok
    await checker.aclose()
    await checker.aclose()  # idempotent
    assert (await checker.run(_spec(f"{base_url}/ok"), 5.0)).ok
    await checker.aclose()


async def test_each_check_opens_a_new_connection(checker: HttpChecker) -> None:
    """force_close: a fresh TCP connection per check, as an uptime check must measure."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # keep-alive on the server side: the client must close
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for _ in range(3):
            assert (await checker.run(_spec(f"http://127.0.0.1:{port}/"), 5.0)).ok
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 3
