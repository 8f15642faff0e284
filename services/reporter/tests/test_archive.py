"""Claims on stored reports (`fao.reporter.archive`) on real FerretDB: one holder per report, a
finished report is never claimed again, a stale claim (its reporter died) is taken over once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.archive import ReportArchive
from fao.reporter.availability import summarize
from fao.reporter.periods import ReportPeriod
from fao.runtime.store import Document

OCTOBER = ReportPeriod.parse("2026-10")
T = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
STALE = timedelta(minutes=30)


async def test_claims_are_exclusive_and_a_stale_one_is_taken_over_once(
    mongo_db: AsyncDatabase[Document],
) -> None:
    archive = ReportArchive(mongo_db)
    assert await archive.claim(OCTOBER, "a", T, STALE) == 1
    assert await archive.claim(OCTOBER, "b", T + timedelta(minutes=1), STALE) is None
    later = T + STALE
    assert await archive.claim(OCTOBER, "b", later, STALE) == 2
    assert await archive.claim(OCTOBER, "c", later, STALE) is None, "attempt 2 is b's"
    doc = await archive.get(OCTOBER)
    assert doc is not None
    assert (doc["attempt"], doc["claimed_by"], doc["state"]) == (2, "b", "producing")

    report = summarize(OCTOBER, [], [], T)
    await archive.complete(OCTOBER, report, [], "th", None)
    assert await archive.claim(OCTOBER, "c", later + 2 * STALE, STALE) is None, "done: never again"
    doc = await archive.get(OCTOBER)
    assert doc is not None
    assert doc["state"] == "done"
    assert doc["figures"]["system_count"] == 0
