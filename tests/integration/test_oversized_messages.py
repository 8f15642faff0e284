"""An oversized result never deafens the correlator (issue 7), real NATS and FerretDB, in-process.

A results stream of an earlier release (no size limit) holds a body just under the server's
max_payload. The correlator starts (its start-up brings the limit in), dead-letters that body
truncated with its size and hash, refuses nothing it should handle, and a real outage still opens
an incident; after a restart, with the same body now refused by the stream, the recovery resolves it.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, eventually

from fao.cli.apply import apply
from fao.correlator.app import CorrelatorSettings
from fao.correlator.app import build as build_correlator
from fao.runtime.consume import TRUNCATED_BODY
from fao.runtime.store import Document
from fao.schemas import CheckResult, ErrorKind
from fao.schemas import subjects as s
from fao.testing.inprocess import serving

MONITOR = "e-service-home"
MESSAGE_TOO_LARGE = 10054


def _result(second: int, ok: bool) -> CheckResult:
    return CheckResult(
        monitor_id=MONITOR, system_id="e-service", zone="default", prober_id="p1",
        started_at=datetime(2026, 11, 25, 1, 0, tzinfo=UTC) + timedelta(seconds=second), ok=ok,
        latency_ms=1.0, error_kind=ErrorKind.NONE if ok else ErrorKind.HTTP_STATUS,
        detail="" if ok else "HTTP 503",
    )  # fmt: skip


async def _publish(js: JetStreamContext, second: int, ok: bool) -> None:
    r = _result(second, ok)
    await js.publish(
        s.result_subject(MONITOR), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.msg_id}
    )


async def test_an_oversized_result_never_deafens_the_correlator(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(CONFIG.replace("{port}", "9"), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    settings = CorrelatorSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(s.RESULTS_STREAM)
        await js.add_stream(StreamConfig(name=s.RESULTS_STREAM, subjects=[s.RESULTS_SUBJECTS]))
        prefix = b'{"monitor_id": "' + MONITOR.encode() + b'", "detail": "'
        big = prefix + b"x" * (nc.max_payload - 64 - len(prefix) - 2) + b'"}'
        await js.publish(s.result_subject(MONITOR), big)

        async def incident_status(status: str) -> bool:
            return await mongo_db["incidents"].count_documents({"status": status}) == 1

        async with serving(build_correlator(settings)):
            for second in (0, 1):
                await _publish(js, second, ok=False)
            await eventually(lambda: incident_status("open"), 15, "the outage after the big body opens")

        sub = await js.pull_subscribe(s.DEAD_LETTER_SUBJECTS, durable="t", stream=s.DEAD_LETTER_STREAM)
        [dead] = await sub.fetch(1, timeout=5)
        assert dead.subject == s.dead_letter_subject("correlator")
        assert dead.headers is not None
        assert dead.headers["Fao-Truncated"] == "true"
        assert dead.headers["Fao-Original-Size"] == str(len(big))
        assert dead.headers["Fao-Original-Sha256"] == hashlib.sha256(big).hexdigest()
        assert dead.data == big[:TRUNCATED_BODY]

        async with serving(build_correlator(settings)):
            with pytest.raises(BadRequestError) as refused:
                await js.publish(s.result_subject(MONITOR), big)
            assert refused.value.err_code == MESSAGE_TOO_LARGE
            for second in (10, 13):  # recovered, and still up after the quiet period (2 s)
                await _publish(js, second, ok=True)
            await eventually(lambda: incident_status("resolved"), 15, "the recovery after a restart resolves")
        assert (await js.stream_info(s.DEAD_LETTER_STREAM)).state.messages == 1
    finally:
        await nc.close()
