"""The gateway as a service (``build`` + ``serve``, in-process, real NATS and FerretDB): its public
server and ``/healthz``, a clean stop, and a port that is taken (one clear line, exit 1)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.stack import SECRET

from fao.gateway.app import build
from fao.gateway.settings import GatewaySettings
from fao.runtime.launch import free_port
from fao.runtime.service import ServiceFailedError
from fao.runtime.store import Document
from fao.testing.fake_line import FakeLineServer
from fao.testing.inprocess import serving


def _settings(nats_url: str, mongo_url: str, db: str, port: int, http_port: int = -1) -> GatewaySettings:
    return GatewaySettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=db, http_port=http_port,
        line_channel_secret=SECRET, gateway_port=port,
    )  # fmt: skip


async def test_the_service_serves_the_webhook_reports_health_and_stops(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    port, http_port = free_port(), free_port()
    async with (
        serving(build(_settings(nats_url, mongo_url, mongo_db.name, port, http_port))),
        httpx.AsyncClient() as client,
    ):
        health = await client.get(f"http://127.0.0.1:{http_port}/healthz")
        assert health.status_code == 200
        assert json.loads(health.text)["checks"]["webhook"] is True
        async with FakeLineServer() as line:
            assert (
                await line.send_webhook(f"http://127.0.0.1:{port}/line/webhook", [], channel_secret=SECRET)
                == 200
            )
            assert (
                await line.send_webhook(f"http://127.0.0.1:{port}/line/webhook", [], channel_secret="x")
                == 401
            )
        assert (await client.get(f"http://127.0.0.1:{port}/docs")).status_code == 404, (
            "no API docs on the edge"
        )
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "stopped: nothing listens any more"


async def test_a_taken_port_stops_the_service_with_one_clear_reason(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ServiceFailedError, match=f"cannot listen on 127.0.0.1:{port} for the LINE webhook"
        ):
            async with serving(build(_settings(nats_url, mongo_url, mongo_db.name, port))):
                pass
