"""A failing browser check's screenshot on the incident, over real NATS (the ``fao-screenshots``
object store) and FerretDB: the dashboard's incident page shows it to a signed-in viewer, the API
lists it with its URL and serves it to a viewer token; nobody else gets it, only what an incident
names is served, and the public status page never shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.webstack import INCIDENT_ID, OLD_INCIDENT_ID, WebStack, web_stack

from fao.runtime.bus import screenshots_bucket
from fao.runtime.store import Document

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SHOT = "e-service-home/20261129T075500000000Z.png"
JPEG_SHOT = "e-service-home/20261129T075600000000Z.jpg"
GONE = "e-service-home/20261001T000000000000Z.png"


@pytest.fixture
async def web(nats_url: str, mongo_db: AsyncDatabase[Document]) -> AsyncIterator[WebStack]:
    async with web_stack(nats_url, mongo_db) as stack:
        store = await screenshots_bucket(stack.js, create=False)
        await store.put(SHOT, PNG)
        await store.put(JPEG_SHOT, b"\xff\xd8\xff jpeg")
        await stack.db["incidents"].update_one(
            {"_id": INCIDENT_ID}, {"$set": {"screenshots": [SHOT, JPEG_SHOT, GONE, "../../etc/passwd"]}}
        )
        yield stack


@asynccontextmanager
async def _viewer(web: WebStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=web.client._transport, base_url="http://gateway.test") as client:
        assert (await web.sign_in(client, "viewer")).status_code == 303
        yield client


async def test_the_incident_page_shows_the_screenshot_to_a_signed_in_viewer(web: WebStack) -> None:
    async with _viewer(web) as viewer:
        page = await viewer.get(f"/incidents/{INCIDENT_ID}")
        assert page.status_code == 200
        assert f'<img src="/incidents/{INCIDENT_ID}/screenshots/0"' in page.text
        assert SHOT in page.text
        image = await viewer.get(f"/incidents/{INCIDENT_ID}/screenshots/0")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content == PNG
        assert image.headers["cache-control"].startswith("private")
        assert image.headers["x-content-type-options"] == "nosniff"
        jpeg = await viewer.get(f"/incidents/{INCIDENT_ID}/screenshots/1")
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert jpeg.content.startswith(b"\xff\xd8")
        # what is not served: past the list, not a number, expired, a name that is no screenshot's,
        # an incident without any
        for path, status in (
            (f"/incidents/{INCIDENT_ID}/screenshots/4", 404),
            (f"/incidents/{INCIDENT_ID}/screenshots/-1", 404),
            (f"/incidents/{INCIDENT_ID}/screenshots/{SHOT}", 404),
            (f"/incidents/{INCIDENT_ID}/screenshots/2", 404),
            (f"/incidents/{INCIDENT_ID}/screenshots/3", 404),
            (f"/incidents/{OLD_INCIDENT_ID}/screenshots/0", 404),
            ("/incidents/inc-nope/screenshots/0", 404),
        ):
            answer = await viewer.get(path)
            assert answer.status_code == status, path
            assert answer.headers["content-type"] == "application/problem+json", path
        expired = await viewer.get(f"/incidents/{INCIDENT_ID}/screenshots/2")
        assert "no longer kept" in expired.json()["detail"]
        without = await viewer.get(f"/incidents/{OLD_INCIDENT_ID}")
        assert "/screenshots/" not in without.text


async def test_without_a_session_the_screenshot_is_the_sign_in_page(web: WebStack) -> None:
    answer = await web.client.get(f"/incidents/{INCIDENT_ID}/screenshots/0")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=/incidents/{INCIDENT_ID}/screenshots/0"
    assert PNG not in answer.content


async def test_the_api_lists_the_screenshot_with_its_url_and_serves_it_to_a_viewer_token(
    web: WebStack,
) -> None:
    detail = await web.client.get(f"/api/v1/incidents/{INCIDENT_ID}", headers=web.auth("viewer"))
    assert detail.status_code == 200
    body = detail.json()
    assert body["incident"]["screenshots"][:2] == [SHOT, JPEG_SHOT]
    assert body["screenshots"][0] == {"name": SHOT, "url": f"/api/v1/incidents/{INCIDENT_ID}/screenshots/0"}
    image = await web.client.get(body["screenshots"][0]["url"], headers=web.auth("viewer"))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == PNG
    anonymous = await web.client.get(body["screenshots"][0]["url"])
    assert anonymous.status_code == 401
    forged = await web.client.get(
        body["screenshots"][0]["url"], headers={"Authorization": "Bearer fao_nope_nothing"}
    )
    assert forged.status_code == 401
    assert PNG not in anonymous.content + forged.content


async def test_the_public_status_page_never_shows_screenshots(web: WebStack) -> None:
    page = await web.client.get("/status")
    assert page.status_code == 200
    assert "screenshot" not in page.text.lower()
    assert SHOT not in page.text
