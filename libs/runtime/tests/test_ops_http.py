"""Every service's /healthz and /metrics (fao.runtime.http.OpsServer) over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from fao.runtime.consume import MESSAGES
from fao.runtime.http import OpsServer


async def wait_status(client: httpx.AsyncClient, status: int, within: float = 5.0) -> httpx.Response:
    """GET /healthz until it answers ``status`` (the checks are refreshed every ``interval``)."""
    deadline = time.monotonic() + within
    while True:
        reply = await client.get("/healthz")
        if reply.status_code == status or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.05)


async def test_healthz_reports_each_check_and_fails_when_one_does() -> None:
    state = {"mongo": True}

    async def mongo_ok() -> bool:
        return state["mongo"]

    async def nats_broken() -> bool:
        raise ConnectionError("gone")

    ops = OpsServer("127.0.0.1", 0, {"mongo": mongo_ok}, interval=0.1)
    await ops.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as client:
            ok = await client.get("/healthz")
            assert ok.status_code == 200, "the first answer is already a real one"
            body = ok.json()
            assert body["status"] == "ok"
            assert body["checks"] == {"mongo": True, "event_loop": True}
            assert 0 <= body["age_s"] < 1
            state["mongo"] = False
            failing = await wait_status(client, 503, within=2.0)
            assert failing.status_code == 503
            assert failing.json()["checks"] == {"mongo": False, "event_loop": True}
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


async def test_a_check_that_hangs_fails_within_its_timeout() -> None:
    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    ops = OpsServer("127.0.0.1", 0, {"mongo": hangs}, timeout=0.2)
    started = time.monotonic()
    await ops.start()
    try:
        assert time.monotonic() - started < 1.0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as client:
            assert (await client.get("/healthz")).json()["checks"]["mongo"] is False
    finally:
        await ops.stop()


async def test_healthz_answers_while_the_event_loop_is_blocked_and_says_so_when_it_stays_blocked() -> None:
    async def ok() -> bool:
        return True

    ops = OpsServer("127.0.0.1", 0, {"nats": ok}, interval=0.1, stale_after=0.5)
    await ops.start()
    answers: list[tuple[int, bool, float]] = []

    def probe() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{ops.port}") as client:
            for _ in range(2):
                time.sleep(0.1)
                sent = time.monotonic()
                reply = client.get("/healthz", timeout=2.0)
                answers.append(
                    (reply.status_code, reply.json()["checks"]["event_loop"], time.monotonic() - sent)
                )
                time.sleep(0.6)

    try:
        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(1.5)  # noqa: ASYNC251  # on purpose: the event loop is blocked, the ops thread is not
        prober.join()
        assert [status for status, _, _ in answers] == [200, 503], answers
        assert [fresh for _, fresh, _ in answers] == [True, False], "a stuck loop reads as unhealthy"
        assert max(latency for _, _, latency in answers) < 0.2, answers
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as client:
            assert (await wait_status(client, 200, within=2.0)).status_code == 200, "fresh again"
    finally:
        await ops.stop()


async def test_metrics_exposes_fao_counters_in_prometheus_format() -> None:
    MESSAGES.labels("test-service", "ok").inc()
    ops = OpsServer("127.0.0.1", 0, {})
    await ops.start()
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{ops.port}/metrics")
            missing = await client.get(f"http://127.0.0.1:{ops.port}/nothing")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        assert 'fao_messages_total{outcome="ok",service="test-service"}' in reply.text
        assert missing.status_code == 404
    finally:
        await ops.stop()
