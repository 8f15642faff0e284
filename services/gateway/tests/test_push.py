"""``POST /push/<token>``: a known token publishes a heartbeat result; anything else publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from fao.gateway.push import PUSH_PROBER, PushHeartbeats, push_router
from fao.schemas import CheckResult, Monitor
from fao.schemas.checks import new_push_token, push_token_sha256

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
TOKEN, DIGEST = new_push_token()


def _monitor(monitor_id: str, digest: str, **fields: object) -> Monitor:
    return Monitor.model_validate(
        {"id": monitor_id, "system": "batch", "check": {"type": "push", "token_sha256": digest},
         "interval": "1h", "zones": ["dc1"], **fields}
    )  # fmt: skip


class _Bus:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.fail = False

    async def publish(self, result: CheckResult) -> None:
        if self.fail:
            raise ConnectionError("NATS away")
        self.results.append(result)


@pytest.fixture
def bus() -> _Bus:
    return _Bus()


@pytest.fixture
async def client(bus: _Bus) -> AsyncIterator[httpx.AsyncClient]:
    monitors = [
        _monitor("nightly-backup", DIGEST),
        _monitor("old-job", push_token_sha256("x" * 32), enabled=False),
        Monitor.model_validate(
            {"id": "web", "system": "batch", "check": {"type": "tcp", "host": "h", "port": 1}}
        ),
    ]
    app = FastAPI()
    app.include_router(push_router(PushHeartbeats(lambda: monitors, bus.publish, lambda: NOW)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


def test_new_tokens_are_random_and_only_their_hash_is_configured() -> None:
    token, digest = new_push_token()
    assert len(token) == 32
    assert token != TOKEN
    assert digest == push_token_sha256(token)
    assert token not in digest


async def test_heartbeat_publishes_a_success_for_the_monitor(client: httpx.AsyncClient, bus: _Bus) -> None:
    answer = await client.post(f"/push/{TOKEN}")
    assert answer.status_code == 200
    assert answer.json() == {"monitor": "nightly-backup"}
    assert (await client.get(f"/push/{TOKEN}")).status_code == 200, "GET works for jobs that can only fetch"
    result = bus.results[0]
    assert (result.monitor_id, result.system_id, result.zone, result.prober_id) == (
        "nightly-backup", "batch", "dc1", PUSH_PROBER,
    )  # fmt: skip
    assert result.ok
    assert result.started_at == NOW


async def test_unknown_disabled_or_malformed_tokens_are_404_and_publish_nothing(
    client: httpx.AsyncClient, bus: _Bus
) -> None:
    for token in ["y" * 32, "x" * 32, "short", "z" * 200]:
        answer = await client.post(f"/push/{token}")
        assert answer.status_code == 404, token
        assert answer.json() == {"detail": "unknown push token"}
    assert bus.results == []


async def test_bus_failure_is_503(client: httpx.AsyncClient, bus: _Bus) -> None:
    bus.fail = True
    answer = await client.post(f"/push/{TOKEN}")
    assert answer.status_code == 503
    assert bus.results == []
