"""Multi-step journeys against a small local aiohttp app with a login form (CSRF token, session
cookie, redirect to the home page): the whole journey, and the first failing step as the detail."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from fao.prober.checks.journey import JourneyChecker
from fao.schemas import ErrorKind, JourneyCheck

PASSWORD = "j0urney-pass"


class _Portal:
    """A login form with a CSRF token; /home needs the session cookie the login sets."""

    def __init__(self) -> None:
        self.csrf: set[str] = set()
        self.sessions: set[str] = set()
        self.hang = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_get("/home", self.home)
        app.router.add_get("/hang", self.hang_forever)
        return app

    async def login_form(self, request: web.Request) -> web.Response:
        token = secrets.token_hex(8)
        self.csrf.add(token)
        form = (
            f'<form method="post"><input type="hidden" name="csrf" value="{token}"><input name="user"></form>'
        )
        return web.Response(text=form, content_type="text/html")

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf") not in self.csrf:
            return web.Response(status=403, text="bad csrf")
        if form.get("user") != "monitor" or form.get("password") != PASSWORD:
            return web.Response(text="Invalid login", content_type="text/html")
        session = secrets.token_hex(8)
        self.sessions.add(session)
        response = web.HTTPFound("/home")
        response.set_cookie("portal_session", session)
        raise response

    async def home(self, request: web.Request) -> web.Response:
        if request.cookies.get("portal_session") not in self.sessions:
            raise web.HTTPFound("/login")
        return web.Response(text="<h1>Welcome, monitor</h1><p>ระบบบริการ</p>", content_type="text/html")

    async def hang_forever(self, request: web.Request) -> web.Response:
        await self.hang.wait()
        return web.Response(text="late")


@pytest.fixture(scope="module")
async def portal() -> AsyncIterator[str]:
    runner = web.AppRunner(_Portal().app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_TEST_PORTAL_PASSWORD", PASSWORD)


def _journey(base: str, **changes: Any) -> JourneyCheck:
    steps: list[dict[str, Any]] = [
        {"name": "login page", "url": f"{base}/login", "keyword": "<form",
         "extract": {"csrf": r'name="csrf" value="([0-9a-f]+)"'}},
        {"name": "log in", "method": "POST", "url": f"{base}/login",
         "form": {"user": "monitor", "password": "${env:FAO_TEST_PORTAL_PASSWORD}", "csrf": "${csrf}"},
         "keyword": "Welcome"},
        {"name": "home", "url": f"{base}/home", "keyword": "ระบบบริการ"},
    ]  # fmt: skip
    for index, change in changes.items():
        steps[int(index[1:])].update(change)
    return JourneyCheck.model_validate({"steps": steps})


async def test_login_journey_passes_and_times_every_step(portal: str) -> None:
    outcome = await JourneyChecker().run(_journey(portal), 5.0)
    assert outcome.ok, outcome.detail
    assert outcome.http_status == 200
    assert outcome.observations is not None
    steps = outcome.observations.steps
    assert [(s.name, s.ok) for s in steps] == [("login page", True), ("log in", True), ("home", True)]
    assert all(s.ms > 0 for s in steps)


async def test_wrong_password_fails_at_the_login_step(portal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_TEST_PORTAL_PASSWORD", "wrong")
    outcome = await JourneyChecker().run(_journey(portal), 5.0)
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert outcome.detail == "step 2 (log in): keyword 'Welcome' not found"
    assert outcome.observations is not None
    assert [(s.name, s.ok) for s in outcome.observations.steps] == [("login page", True), ("log in", False)]
    assert "wrong" not in outcome.detail


async def test_a_token_that_cannot_be_extracted_fails_the_first_step(portal: str) -> None:
    outcome = await JourneyChecker().run(
        _journey(portal, s0={"extract": {"csrf": r'name="token" value="(\w+)"'}}), 5.0
    )
    assert outcome.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert outcome.detail == "step 1 (login page): nothing to extract for csrf"


async def test_without_the_extracted_token_the_server_refuses(portal: str) -> None:
    """The CSRF token really travels from step 1 to step 2: a constant one is refused."""
    journey = _journey(portal, s1={"form": {"user": "monitor", "password": PASSWORD, "csrf": "0000"}})
    outcome = await JourneyChecker().run(journey, 5.0)
    assert outcome.error_kind is ErrorKind.HTTP_STATUS
    assert outcome.detail == "step 2 (log in): HTTP 403"


async def test_wrong_keyword_on_the_last_step(portal: str) -> None:
    outcome = await JourneyChecker().run(_journey(portal, s2={"keyword": "Dashboard"}), 5.0)
    assert outcome.detail == "step 3 (home): keyword 'Dashboard' not found"


async def test_unset_secret_is_internal(portal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAO_TEST_PORTAL_PASSWORD")
    outcome = await JourneyChecker().run(_journey(portal), 5.0)
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert outcome.detail.startswith("step 2 (log in): environment variable FAO_TEST_PORTAL_PASSWORD")


async def test_a_step_that_hangs_times_out_the_journey(portal: str) -> None:
    outcome = await JourneyChecker().run(_journey(portal, s2={"url": f"{portal}/hang", "keyword": None}), 0.5)
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.detail == "step 3 (home): journey timed out after 0.5s"


async def test_refused_first_step(closed_port: int) -> None:
    outcome = await JourneyChecker().run(_journey(f"http://127.0.0.1:{closed_port}"), 2.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED
    assert outcome.detail.startswith("step 1 (login page): connection refused")


def test_variables_must_be_extracted_before_use_and_placeholders_well_formed() -> None:
    with pytest.raises(ValueError, match=r"step 1 \(a\) uses \$\{token\} before a step extracts it"):
        JourneyCheck.model_validate({"steps": [{"name": "a", "url": "http://h/${token}"}]})
    with pytest.raises(ValueError, match=r"use \$\{variable\} or \$\{env:NAME\}"):
        JourneyCheck.model_validate(
            {"steps": [{"name": "a", "url": "http://h/", "form": {"p": "${env:lower}"}}]}
        )
    with pytest.raises(ValueError, match="needs a group"):
        JourneyCheck.model_validate({"steps": [{"name": "a", "url": "http://h/", "extract": {"t": "abc"}}]})
