"""Every route of the gateway's app states who may call it, and the role is really enforced:
each route is called without credentials and with every role below its own, and must refuse
(401/403 problem details, or the sign-in page for the dashboard) before doing anything."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.webstack import PASSWORD, WebStack, csrf_of, web_stack
from starlette.routing import Mount

from fao.gateway.access import RANK, ROLES
from fao.gateway.app import create_app
from fao.gateway.guard import ROLE_ATTRIBUTE
from fao.runtime.store import Document

PROBLEM = "application/problem+json"
# Mounted apps that are not routes with dependencies: the static files and the Thai font (public
# by nature) and the API (whose own routes are checked below).
MOUNTS = {"/static", "/fonts", "/api/v1"}
# FastAPI's own routes of the API app (the OpenAPI document) are public on purpose.
OPENAPI_PATHS = {"/openapi.json"}


def _roles(route: APIRoute) -> list[str]:
    found: list[str] = []

    def walk(dependant: Any) -> None:
        call = getattr(dependant, "call", None)
        if call is not None and hasattr(call, ROLE_ATTRIBUTE):
            found.append(getattr(call, ROLE_ATTRIBUTE))
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


def _routes(app: FastAPI | APIRouter, prefix: str = "") -> Iterator[tuple[str, str, APIRoute | None]]:
    for route in app.routes:
        included = getattr(route, "original_router", None)  # app.include_router(...) (no prefix here)
        if isinstance(included, APIRouter):
            yield from _routes(included, prefix)
            continue
        if isinstance(route, Mount):
            assert route.path in MOUNTS, f"unexpected mount {route.path}"
            if isinstance(route.app, FastAPI):
                yield from _routes(route.app, prefix + route.path)
            continue
        path = getattr(route, "path", "")
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                yield method, prefix + path, route
        elif path not in OPENAPI_PATHS:
            yield "*", prefix + path, None


def all_routes() -> list[tuple[str, str, str]]:
    """(method, path, role) of every route of the full app."""
    app = create_app(lambda: None, None, 64 * 1024, lambda: None)
    out = []
    for method, path, route in _routes(app):
        assert route is not None, f"{method} {path} is not a FastAPI route with dependencies"
        roles = _roles(route)
        assert len(roles) == 1, f"{method} {path} must declare exactly one role, has {roles}"
        out.append((method, path, roles[0]))
    return out


def test_every_route_of_the_app_declares_one_role() -> None:
    routes = all_routes()
    paths = {path for _, path, _ in routes}
    # the walk really saw the API, the dashboard, the status page and the webhook
    assert {"/api/v1/incidents", "/", "/status", "/line/webhook", "/login"} <= paths
    assert len(routes) > 30
    public = {(m, p) for m, p, r in routes if r == "public"}
    assert public == {
        ("POST", "/line/webhook"), ("GET", "/status"), ("GET", "/login"), ("POST", "/login"),
        ("GET", "/lang/{code}"),
    }  # fmt: skip


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


@pytest.fixture
async def web(nats_url: str, mongo_db: AsyncDatabase[Document]) -> AsyncIterator[WebStack]:
    async with web_stack(nats_url, mongo_db, seeded=False) as stack:
        yield stack


async def _session_client(web: WebStack, role: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(transport=web.client._transport, base_url="http://gateway.test")
    signed = await web.sign_in(client, role, PASSWORD)
    assert signed.status_code == 303
    page = await client.get("/")
    return client, csrf_of(page.text)


async def test_every_protected_route_refuses_callers_below_its_role(web: WebStack) -> None:
    routes = [(m, p, r) for m, p, r in all_routes() if r != "public"]
    sessions = {role: await _session_client(web, role) for role in ROLES}
    audit_before = await web.db["audit"].count_documents({})
    checked = 0
    try:
        for method, path, need in routes:
            url = _concrete(path)
            lower = [role for role in ROLES if RANK[role] < RANK[need]]  # type: ignore[index]
            if path.startswith("/api/v1"):
                anonymous = await web.client.request(method, url, json={})
                assert anonymous.status_code == 401, (method, path)
                assert anonymous.headers["content-type"] == PROBLEM
                for role in lower:
                    answer = await web.client.request(method, url, json={}, headers=web.auth(role))
                    assert answer.status_code == 403, (method, path, role)
                    assert answer.headers["content-type"] == PROBLEM
                    assert answer.json()["status"] == 403
            else:
                anonymous = await web.client.request(method, url, data={})
                assert anonymous.status_code == 303, (method, path)
                assert anonymous.headers["location"].startswith("/login")
                for role in lower:
                    client, csrf = sessions[role]
                    answer = await client.request(method, url, data={"csrf": csrf})
                    assert answer.status_code == 403, (method, path, role)
                    assert answer.headers["content-type"] == PROBLEM
            checked += 1
    finally:
        for client, _ in sessions.values():
            await client.aclose()
    assert checked == len(routes)
    assert await web.db["audit"].count_documents({}) == audit_before, "a refused call changed nothing"
