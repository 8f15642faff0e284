"""The management summary's push (`fao.reporter.line_push`) against the fake LINE API: a transient
failure is retried under the same retry key, a second sender (another reporter, a restart) is told
it was accepted already, a refusal and an unreachable LINE are recorded, never raised."""

from __future__ import annotations

from datetime import UTC, datetime

from fao.reporter.line_push import LineTarget, push_summary, retry_key
from fao.runtime.launch import free_port
from fao.testing.fake_line import FakeLineServer

GROUP = "C" + "b" * 32
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def target(base_url: str, attempts: int = 3) -> LineTarget:
    return LineTarget(base_url=base_url, access_token="test-token", group=GROUP, timeout=5, attempts=attempts)


async def test_a_transient_failure_is_retried_and_a_second_sender_is_told_it_was_accepted(
    fake_line: FakeLineServer,
) -> None:
    fake_line.fail_next(500)
    record = await push_summary(target(fake_line.base_url), "2026-10", "สรุปรายงาน", NOW)
    assert record["pushed_at"] == NOW
    assert record["retry_key"] == retry_key("2026-10", GROUP)
    again = await push_summary(target(fake_line.base_url), "2026-10", "สรุปรายงาน", NOW)
    assert again["already_accepted"] is True
    assert [p["messages"][0]["text"] for p in fake_line.pushes] == ["สรุปรายงาน"]
    statuses = [r.status for r in fake_line.requests if r.path.endswith("/push")]
    assert statuses == [500, 200, 409]
    keys = {r.headers["x-line-retry-key"] for r in fake_line.requests if r.path.endswith("/push")}
    assert keys == {retry_key("2026-10", GROUP)}


async def test_a_refusal_is_recorded_without_retrying(fake_line: FakeLineServer) -> None:
    fake_line.fail_next(400, message="The request body has 1 error(s)")
    record = await push_summary(target(fake_line.base_url), "2026-10", "สรุปรายงาน", NOW)
    assert record["error"].startswith("LINE answered 400")
    assert "pushed_at" not in record
    assert len([r for r in fake_line.requests if r.path.endswith("/push")]) == 1
    assert fake_line.pushes == []


async def test_an_unreachable_line_is_recorded_after_the_attempts() -> None:
    record = await push_summary(target(f"http://127.0.0.1:{free_port()}", attempts=1), "2026-10", "t", NOW)
    assert record["error"].startswith("cannot reach LINE: ")
    assert "pushed_at" not in record
