"""HTTP checks grown for issue 10: JSON path assertions, basic/bearer auth from the environment,
client certificates, and phase observations — against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fao.prober.checks.http import HttpChecker
from fao.schemas import ErrorKind, HttpCheck
from fao.schemas.jsonpath import JsonPathError, as_text, find, parse_json_path
from fao.testing.certificates import Issued, TestCa

PASSWORD = "pa55-w0rd"
TOKEN = "t0ken-abc"


async def _health(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "db": {"ok": True, "lag": 3}, "items": [{"name": "a"}, {"name": "b"}]}
    )


async def _text(request: web.Request) -> web.Response:
    return web.Response(text="<html>not json</html>")


async def _basic(request: web.Request) -> web.Response:
    expected = "Basic " + base64.b64encode(f"monitor:{PASSWORD}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return web.Response(status=401, text="who are you")
    return web.Response(text="welcome")


async def _bearer(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.Response(status=401, text="who are you")
    return web.Response(text="welcome")


async def _client(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    return web.Response(
        text=f"hello {dict(x[0] for x in peer['subject'])['commonName']}" if peer else "anonymous"
    )


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/text", _text)
    app.router.add_get("/basic", _basic)
    app.router.add_get("/bearer", _bearer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


class _MutualTls:
    def __init__(self, url: str, ca: TestCa, client: Issued, stranger: Issued) -> None:
        self.url = url
        self.ca = ca
        self.client = client
        self.stranger = stranger


@pytest.fixture(scope="module")
async def mtls(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_MutualTls]:
    """An https server that requires a client certificate signed by its CA."""
    folder = Path(tmp_path_factory.mktemp("mtls"))
    ca = TestCa(folder / "ca")
    other_ca = TestCa(folder / "other", name="Other CA")
    context = ca.issue("server", ["127.0.0.1"]).server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca.ca_file)
    app = web.Application()
    app.router.add_get("/", _client)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    client = ca.issue("client", ["prober-dc1"], client=True)
    stranger = other_ca.issue("stranger", ["intruder"], client=True)
    yield _MutualTls(f"https://127.0.0.1:{port}/", ca, client, stranger)
    await runner.cleanup()


@pytest.fixture
async def checker() -> AsyncIterator[HttpChecker]:
    checker = HttpChecker()
    yield checker
    await checker.aclose()


def _spec(url: str, **fields: Any) -> HttpCheck:
    return HttpCheck.model_validate({"url": url, **fields})


async def test_json_path_value_holds(checker: HttpChecker, site: str) -> None:
    outcome = await checker.run(_spec(f"{site}/health", json_path="$.status", json_expected="ok"), 3.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.answer == "ok"
    nested = await checker.run(_spec(f"{site}/health", json_path="$.db.ok", json_expected="true"), 3.0)
    assert nested.ok, nested.detail
    indexed = await checker.run(
        _spec(f"{site}/health", json_path="$.items[-1]['name']", json_expected="b"), 3.0
    )
    assert indexed.ok, indexed.detail


async def test_json_path_wrong_value_missing_path_and_not_json(checker: HttpChecker, site: str) -> None:
    wrong = await checker.run(_spec(f"{site}/health", json_path="$.db.lag", json_expected="0"), 3.0)
    assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert wrong.detail == "$.db.lag is '3', expected '0'"
    missing = await checker.run(_spec(f"{site}/health", json_path="$.items[5]"), 3.0)
    assert missing.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert missing.detail == "$.items[5] not found in the JSON body"
    text = await checker.run(_spec(f"{site}/text", json_path="$.status"), 3.0)
    assert text.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert text.detail == "the body is not JSON"


async def test_phases_are_observed(checker: HttpChecker, site: str) -> None:
    outcome = await checker.run(_spec(f"{site}/health".replace("127.0.0.1", "localhost")), 3.0)
    seen = outcome.observations
    assert seen is not None
    assert seen.dns_ms is not None
    assert seen.connect_ms is not None
    assert seen.first_byte_ms is not None
    assert seen.first_byte_ms <= outcome.latency_ms


@pytest.fixture(scope="module")
async def https_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """``site``'s /health over https, for ``localhost`` (so a name is looked up)."""
    ca = TestCa(Path(tmp_path_factory.mktemp("https")) / "ca")
    app = web.Application()
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ca.issue("server", ["localhost", "127.0.0.1"]).server_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://localhost:{runner.addresses[0][1]}/health"
    await runner.cleanup()


@pytest.mark.parametrize(
    "rule", [{}, {"keyword": "ok"}], ids=["status only (raw fast path)", "keyword (aiohttp)"]
)
async def test_https_phases_follow_one_another_with_the_handshake_apart(
    checker: HttpChecker, https_site: str, rule: dict[str, str]
) -> None:
    """DNS, TCP connect, TLS handshake and first byte are timed one after the other, so together
    they fit in the check's latency; a plain http check has no TLS phase."""
    outcome = await checker.run(_spec(https_site, verify_tls=False, **rule), 5.0)
    assert outcome.ok, outcome.detail
    seen = outcome.observations
    assert seen is not None
    phases = (seen.dns_ms, seen.connect_ms, seen.tls_ms, seen.first_byte_ms)
    assert all(ms is not None and ms > 0 for ms in phases), phases
    assert sum(ms for ms in phases if ms is not None) <= outcome.latency_ms
    plain = await checker.run(_spec(https_site.replace("https://", "http://"), **rule), 5.0)
    assert plain.observations is not None
    assert plain.observations.tls_ms is None


async def test_basic_auth_from_the_environment(
    checker: HttpChecker, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(
        f"{site}/basic", basic_auth={"username": "monitor", "password_env": "FAO_TEST_HTTP_PASSWORD"}
    )
    monkeypatch.setenv("FAO_TEST_HTTP_PASSWORD", PASSWORD)
    assert (await checker.run(spec, 3.0)).ok
    monkeypatch.setenv("FAO_TEST_HTTP_PASSWORD", "wrong")
    denied = await checker.run(spec, 3.0)
    assert denied.error_kind is ErrorKind.HTTP_STATUS
    assert denied.detail == "HTTP 401"
    monkeypatch.delenv("FAO_TEST_HTTP_PASSWORD")
    unset = await checker.run(spec, 3.0)
    assert unset.error_kind is ErrorKind.INTERNAL
    assert unset.detail == (
        "environment variable FAO_TEST_HTTP_PASSWORD (a secret named in the check) is not set on this prober"
    )


async def test_bearer_token_from_the_environment(
    checker: HttpChecker, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAO_TEST_HTTP_TOKEN", TOKEN)
    spec = _spec(f"{site}/bearer", bearer_token_env="FAO_TEST_HTTP_TOKEN", headers={"X-Fao": "1"})
    assert (await checker.run(spec, 3.0)).ok
    monkeypatch.setenv("FAO_TEST_HTTP_TOKEN", "stale")
    assert (await checker.run(spec, 3.0)).error_kind is ErrorKind.HTTP_STATUS


def test_credentials_are_never_written_in_config() -> None:
    with pytest.raises(ValueError, match="no Authorization header in config"):
        _spec("http://127.0.0.1/", headers={"authorization": "Basic c2VjcmV0"})
    with pytest.raises(ValueError, match="pattern"):
        _spec("http://127.0.0.1/", bearer_token_env="the token itself")


async def test_client_certificate_is_presented(checker: HttpChecker, mtls: _MutualTls) -> None:
    spec = _spec(mtls.url, client_cert=str(mtls.client.cert_file), client_key=str(mtls.client.key_file),
                 keyword="hello prober-dc1", verify_tls=False)  # fmt: skip
    outcome = await checker.run(spec, 3.0)
    assert outcome.ok, outcome.detail


async def test_missing_or_foreign_client_certificate_is_refused(
    checker: HttpChecker, mtls: _MutualTls
) -> None:
    anonymous = await checker.run(_spec(mtls.url, verify_tls=False), 3.0)
    assert anonymous.error_kind is ErrorKind.CONNECTION_ERROR
    assert anonymous.detail == "ServerDisconnectedError: Server disconnected"
    foreign = _spec(mtls.url, client_cert=str(mtls.stranger.cert_file), client_key=str(mtls.stranger.key_file),
                    verify_tls=False)  # fmt: skip
    outcome = await checker.run(foreign, 3.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_ERROR


async def test_unreadable_client_certificate_is_internal(checker: HttpChecker, tmp_path: Path) -> None:
    outcome = await checker.run(_spec("https://127.0.0.1:1/", client_cert=str(tmp_path / "none.pem")), 3.0)
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert (
        outcome.detail
        == f"client certificate {tmp_path / 'none.pem'} cannot be loaded: No such file or directory"
    )


def test_json_path_syntax() -> None:
    assert parse_json_path("$.a['b-c'][0].d") == ("a", "b-c", 0, "d")
    assert find({"a": [1, {"b": None}]}, parse_json_path("$.a[1].b")) == (True, None)
    assert find({"a": []}, parse_json_path("$.a[0]")) == (False, None)
    assert as_text(None) == "null"
    assert as_text({"x": 1}) == '{"x":1}'
    with pytest.raises(JsonPathError, match="must start with"):
        parse_json_path("status")
    with pytest.raises(JsonPathError, match=r"cannot read '\[\*\]'"):
        parse_json_path("$.items[*]")
    with pytest.raises(ValueError, match="json_expected needs a json_path"):
        _spec("http://127.0.0.1/", json_expected="ok")
