"""Every service's /healthz and /metrics (fao.runtime.http.OpsServer) over real HTTP."""

from __future__ import annotations

import httpx

from fao.runtime.consume import MESSAGES
from fao.runtime.http import OpsServer


async def test_healthz_reports_each_check_and_fails_when_one_does() -> None:
    state = {"mongo": True}

    async def mongo_ok() -> bool:
        return state["mongo"]

    async def nats_broken() -> bool:
        raise ConnectionError("gone")

    ops = OpsServer("127.0.0.1", 0, {"mongo": mongo_ok})
    await ops.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as client:
            ok = await client.get("/healthz")
            assert ok.status_code == 200
            assert ok.json() == {"status": "ok", "checks": {"mongo": True}}
            state["mongo"] = False
            failing = await client.get("/healthz")
            assert failing.status_code == 503
            assert failing.json()["checks"] == {"mongo": False}
    finally:
        await ops.stop()

    raising = OpsServer("127.0.0.1", 0, {"nats": nats_broken})
    await raising.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{raising.port}") as client:
            reply = await client.get("/healthz")
            assert reply.status_code == 503, "a check that raises counts as failing, not as a crash"
    finally:
        await raising.stop()


async def test_metrics_exposes_fao_counters_in_prometheus_format() -> None:
    MESSAGES.labels("test-service", "ok").inc()
    ops = OpsServer("127.0.0.1", 0, {})
    await ops.start()
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{ops.port}/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        assert 'fao_messages_total{outcome="ok",service="test-service"}' in reply.text
    finally:
        await ops.stop()
