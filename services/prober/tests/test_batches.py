"""Batcher: results become ResultBatch messages per subject, closed by count, bytes or age (times
are plain numbers: the clock is the caller's)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from fao.prober.batches import Batch, Batcher
from fao.runtime.bus import KIB, headers_size
from fao.schemas import CheckResult
from fao.schemas.results import ResultBatch, ResultMessage
from fao.schemas.subjects import RESULT_PARTITIONS, result_batch_subject, result_partition

_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def _result(monitor_id: str, n: int = 0, detail: str = "") -> CheckResult:
    """A result of ``monitor_id``, the one monitor of the system of the same id (results are
    partitioned by system)."""
    return CheckResult(
        monitor_id=monitor_id, system_id=monitor_id, zone="bkk", prober_id="p1",
        started_at=_EPOCH + timedelta(seconds=n), ok=not detail, latency_ms=1.0,
    ).model_copy(update={"detail": detail})  # fmt: skip  # model_copy skips the 500-character cap


def _same_partition(count: int) -> list[str]:
    """``count`` monitor ids that hash to one partition."""
    ids = [f"m{i}" for i in range(2000)]
    return [m for m in ids if result_partition(m) == result_partition(ids[0])][:count]


def _batcher(**overrides: object) -> Batcher:
    settings: dict[str, object] = {"prober_id": "p1", "zone": "bkk", "boot": 1234, "max_delay": 0.2}
    settings.update(overrides)
    return Batcher(**settings)  # type: ignore[arg-type]  # test helper: keyword overrides


def _decode(batch: Batch) -> ResultBatch:
    decoded = ResultBatch.model_validate_json(batch.body)
    assert decoded.batch_id == batch.msg_id
    assert len(decoded.results) == batch.count
    return decoded


def test_a_batch_closes_when_it_holds_max_count_results() -> None:
    batcher = _batcher(max_count=3)
    a, b, c = _same_partition(3)
    assert batcher.add(_result(a), now=0.0) == []
    assert batcher.add(_result(b), now=0.0) == []
    [batch] = batcher.add(_result(c), now=0.0) or []
    assert batch.subject == result_batch_subject("bkk", result_partition(a))
    decoded = _decode(batch)
    assert [r.monitor_id for r in decoded.results] == [a, b, c]
    assert (decoded.prober_id, decoded.zone) == ("p1", "bkk")
    assert batch.headers == {"Nats-Msg-Id": "p1.1234.1"}
    assert batcher.pending == 0
    assert batcher.due_at() is None


def test_a_batch_closes_before_its_message_would_be_over_max_bytes() -> None:
    ids = _same_partition(7)
    one = len(_result(ids[0], detail="x" * 400).model_dump_json())
    limit = 2 * KIB
    batcher = _batcher(max_bytes=limit)
    full: list[Batch] = []
    for i, monitor_id in enumerate(ids):
        full += batcher.add(_result(monitor_id, i, detail="x" * 400), now=0.0) or []
    assert len(full) >= 2, "the results did not fit one message"
    for batch in full:
        size = len(batch.body) + headers_size(batch.headers)
        assert size <= limit
        assert size + one + 20 > limit, "closed only when the next would not fit (ids counted at 20 digits)"
    rest = batcher.close_all()
    assert [r.monitor_id for b in full + rest for r in _decode(b).results] == ids


def test_open_batches_are_due_max_delay_after_their_oldest_result() -> None:
    batcher = _batcher(max_delay=0.2)
    first = "m0"
    other = next(m for m in (f"m{i}" for i in range(1, 99)) if result_partition(m) != result_partition(first))
    batcher.add(_result(first), now=10.0)
    batcher.add(_result(other), now=10.15)
    assert batcher.due_at() == pytest.approx(10.2)
    assert batcher.take_due(10.19) == []
    due = batcher.take_due(10.2)
    assert sorted(b.subject for b in due) == sorted(
        result_batch_subject("bkk", result_partition(m)) for m in (first, other)
    ), "every open batch goes, the younger one too"
    assert batcher.pending == 0
    assert batcher.due_at() is None
    batcher.add(_result(first, 1), now=11.0)
    assert batcher.due_at() == pytest.approx(11.2), "the next delay counts from the next result"


def test_each_monitor_keeps_its_order_and_stays_in_its_partition() -> None:
    batcher = _batcher(max_count=5)
    monitors = [f"mon-{i}" for i in range(40)]
    sent = [_result(monitors[(i * 7) % 40], i) for i in range(400)]
    closed: list[Batch] = []
    for result in sent:
        closed += batcher.add(result, now=0.0) or []
    closed += batcher.close_all()
    received: dict[str, list[int]] = defaultdict(list)
    for batch in closed:
        for r in _decode(batch).results:
            assert batch.subject == result_batch_subject("bkk", result_partition(r.monitor_id))
            received[r.monitor_id].append(int((r.started_at - _EPOCH).total_seconds()))
    expected: dict[str, list[int]] = defaultdict(list)
    for i, result in enumerate(sent):
        expected[result.monitor_id].append(i)
    assert received == expected
    assert {result_partition(m) for m in monitors} <= set(range(RESULT_PARTITIONS))


def test_the_monitors_of_one_system_travel_in_one_partition_whatever_their_ids() -> None:
    """The partition is the system's, not the monitor's: a system's monitors failing together land
    in one batch (one commit, one incident) even when their own ids hash to different partitions."""
    monitors = [f"mon-{i}" for i in range(40)]
    assert len({result_partition(m) for m in monitors}) > 1, "ids spread over partitions by themselves"
    batcher = _batcher(max_count=100)
    for n, monitor in enumerate(monitors):
        assert not batcher.add(_result(monitor, n).model_copy(update={"system_id": "e-service"}), now=0.0)
    [batch] = batcher.close_all()
    assert batch.subject == result_batch_subject("bkk", result_partition("e-service"))
    assert [r.monitor_id for r in _decode(batch).results] == monitors


def test_batch_ids_are_numbered_per_prober_start() -> None:
    first, restarted = _batcher(max_count=1), _batcher(max_count=1, boot=5678)
    ids = [b.msg_id for i in range(3) for b in first.add(_result("web", i), now=0.0) or []]
    assert ids == ["p1.1234.1", "p1.1234.2", "p1.1234.3"]
    [again] = restarted.add(_result("web", 9), now=0.0) or []
    assert again.msg_id == "p1.5678.1", "a restarted prober never reuses an id"


def test_a_result_too_large_for_any_message_is_refused() -> None:
    batcher = _batcher()
    assert batcher.add(_result("web", detail="x" * (64 * KIB)), now=0.0) is None
    assert batcher.pending == 0
    assert batcher.add(_result("web"), now=0.0) == []


def test_the_results_stream_reads_single_results_and_batches() -> None:
    batcher = _batcher(max_count=2)
    a, b = _same_partition(2)
    batcher.add(_result(a, 1), now=0.0)
    [batch] = batcher.add(_result(b, 2), now=0.0) or []
    assert [r.monitor_id for r in ResultMessage.model_validate_json(batch.body).results] == [a, b]
    single = _result("web").model_dump_json()
    assert ResultMessage.model_validate_json(single).results == [_result("web")]
