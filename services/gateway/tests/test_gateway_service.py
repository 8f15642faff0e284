"""The gateway as a service (``build`` + ``serve``, in-process, real NATS and FerretDB): its public
server and ``/healthz``, a clean stop, a port that is taken (one clear line, exit 1), and push
monitors' heartbeats."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.stack import SECRET

from fao.gateway.app import build
from fao.gateway.settings import GatewaySettings
from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.launch import free_port
from fao.runtime.service import ServiceFailedError
from fao.runtime.store import Document
from fao.schemas import CheckResult, Monitor
from fao.schemas import subjects as s
from fao.schemas.checks import new_push_token
from fao.schemas.subjects import monitor_key
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
        # /healthz answers from a snapshot refreshed every second after its checks: the first
        # read can be from before the service was up (seen once in a full run: 503)
        health = await client.get(f"http://127.0.0.1:{http_port}/healthz")
        for _ in range(100):
            if health.status_code == 200:
                break
            await asyncio.sleep(0.1)
            health = await client.get(f"http://127.0.0.1:{http_port}/healthz")
        assert health.status_code == 200, health.text
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


async def test_a_host_that_is_not_this_machines_names_both_settings(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """Binding only (no traffic): 192.0.2.1 (TEST-NET-1) is no address of this machine."""
    settings = _settings(nats_url, mongo_url, mongo_db.name, 0).model_copy(
        update={"gateway_host": "192.0.2.1"}
    )
    with pytest.raises(ServiceFailedError, match="Cannot assign requested address") as caught:
        async with serving(build(settings)):
            pass
    assert "FAO_GATEWAY_HOST: an address of this machine" in str(caught.value)


async def test_the_service_takes_push_heartbeats_of_the_monitors_in_the_bucket(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], js: JetStreamContext
) -> None:
    token, digest = new_push_token()
    await ensure_bus(js)
    monitor = Monitor.model_validate(
        {"id": "nightly-backup", "system": "backup", "check": {"type": "push", "token_sha256": digest}}
    )
    await (await monitors_bucket(js)).put(monitor_key(monitor.id), monitor.model_dump_json().encode())
    port = free_port()
    async with (
        serving(build(_settings(nats_url, mongo_url, mongo_db.name, port))),
        httpx.AsyncClient() as client,
    ):
        beat = await client.post(f"http://127.0.0.1:{port}/push/{token}")
        assert beat.status_code == 200, beat.text
        assert beat.json() == {"monitor": "nightly-backup"}
        unknown = await client.post(f"http://127.0.0.1:{port}/push/{new_push_token()[0]}")
        assert unknown.status_code == 404
    info = await js.stream_info(s.RESULTS_STREAM)
    assert info.state.messages == 1
    msg = await js.get_msg(s.RESULTS_STREAM, info.state.last_seq)
    result = CheckResult.model_validate_json(msg.data or b"")
    assert (result.monitor_id, result.ok, result.prober_id) == ("nightly-backup", True, "gateway")
