"""Scheduler cadence: spread, jitter, re-checks, recovery, one run in flight, config changes, and
the same run times on every prober (handovers)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fao.prober.cadence import SharedCadence
from fao.prober.scheduler import Due, Scheduler
from fao.schemas import Monitor

MonitorFactory = Callable[..., Monitor]


def _scheduler(epoch: float = 0.0) -> Scheduler:
    return Scheduler(SharedCadence(epoch))


def _run(scheduler: Scheduler, ok: bool, latency: float = 0.05) -> tuple[Due, float | None]:
    """Pop the next due run at its due time and record ``ok`` ``latency`` seconds later."""
    due_at = scheduler.next_due()
    assert due_at is not None
    dues = scheduler.pop_due(due_at)
    assert len(dues) == 1
    return dues[0], scheduler.record(dues[0].monitor.id, ok, due_at + latency)


def _grid_point(monitor_id: str, interval: float, t: float) -> float:
    """The point of the monitor's grid (``SharedCadence(0.0)``) nearest ``t``."""
    phase = SharedCadence(0.0).phase(monitor_id, interval)
    return phase + round((t - phase) / interval) * interval


def _attempts(scheduler: Scheduler, results: list[bool]) -> list[str]:
    """The attempt of each run while feeding ``results`` in order."""
    return [_run(scheduler, ok)[0].attempt for ok in results]


def test_new_monitors_first_runs_spread_uniformly_over_one_interval(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    for i in range(1200):
        scheduler.upsert(make_monitor(f"m{i}", interval=60.0), now=1000.0)
    dues = [scheduler.due_at(f"m{i}") for i in range(1200)]
    assert all(d is not None and 1000.0 <= d < 1062.0 for d in dues)  # one interval, plus jitter
    buckets = [0] * 6
    for d in dues:
        assert d is not None
        buckets[min(5, int((d - 1000.0) // 10))] += 1
    assert min(buckets) > 120, buckets  # 200 expected per 10 s bucket


def test_nothing_is_due_before_its_time(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=60.0), now=0.0)
    due_at = scheduler.next_due()
    assert due_at is not None
    assert scheduler.pop_due(due_at - 1e-6) == []
    assert [d.monitor.id for d in scheduler.pop_due(due_at)] == ["web"]


def test_scheduled_runs_stay_within_jitter_of_a_grid_that_does_not_drift(
    make_monitor: MonitorFactory,
) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=60.0), now=0.0)
    first_due = scheduler.next_due()
    assert first_due is not None
    first = _grid_point("web", 60.0, first_due)
    bound = scheduler.jitter_bound(60.0)
    assert bound == 1.0  # 10 % of 60 s is capped at 1 s
    previous = first
    offsets = []
    for k in range(1, 300):
        due, next_due = _run(scheduler, ok=True, latency=0.3)
        assert due.attempt == "scheduled"
        assert next_due is not None
        offset = next_due - (first + k * 60.0)
        offsets.append(offset)
        assert -bound <= offset <= bound
        assert 60.0 - 2 * bound <= next_due - previous <= 60.0 + 2 * bound
        previous = next_due
    assert max(offsets) - min(offsets) > bound  # jitter is really applied
    assert abs(sum(offsets) / len(offsets)) < 0.2  # centred: the mean period is the interval


def test_jitter_is_ten_percent_of_short_intervals(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    assert scheduler.jitter_bound(5.0) == pytest.approx(0.5)
    assert scheduler.jitter_bound(0.2) == pytest.approx(0.02)
    scheduler.upsert(make_monitor(interval=5.0, timeout=1.0), now=0.0)
    first_due = scheduler.next_due()
    assert first_due is not None
    first = _grid_point("web", 5.0, first_due)
    for k in range(1, 100):
        _, next_due = _run(scheduler, ok=True, latency=0.01)
        assert next_due is not None
        assert abs(next_due - (first + 5.0 * k)) <= 0.5 + 1e-9


def test_failure_after_success_is_rechecked_at_recheck_interval(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(recheck_interval=10.0), now=0.0)
    _run(scheduler, ok=True)
    due_at = scheduler.next_due()
    assert due_at is not None
    dues = scheduler.pop_due(due_at)
    next_due = scheduler.record("web", False, due_at + 2.0)
    assert dues[0].attempt == "scheduled"
    assert next_due is not None
    assert next_due == pytest.approx(due_at + 2.0 + 10.0)
    assert [d.attempt for d in scheduler.pop_due(next_due)] == ["recheck"]


def test_rechecks_stop_once_confirm_of_consecutive_failures_are_in(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 2, "of": 3}), now=0.0)
    attempts = _attempts(scheduler, [True, False, False, False, False, False])
    assert attempts == ["scheduled", "scheduled", "recheck", "recheck", "scheduled", "scheduled"]


def test_window_of_one_never_rechecks_a_failure(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 1, "of": 1}), now=0.0)
    assert _attempts(scheduler, [True, False, False, True]) == ["scheduled"] * 4


def test_persistent_failure_is_checked_at_interval_after_the_window(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 2, "of": 2}, recheck_interval=10.0), now=0.0)
    _attempts(scheduler, [True, False, False])
    for _ in range(5):
        due, next_due = _run(scheduler, ok=False, latency=0.0)
        assert due.attempt == "scheduled"
        assert next_due is not None
        assert next_due - due.due_at >= 60.0 - 2 * scheduler.jitter_bound(60.0)


def test_first_result_of_a_new_monitor_failing_is_rechecked(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(), now=0.0)
    assert _attempts(scheduler, [False, False, False, False]) == [
        "scheduled",
        "recheck",
        "recheck",
        "scheduled",
    ]


def test_success_inside_the_confirm_window_ends_the_rechecks(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 2, "of": 3}, recover_after=1), now=0.0)
    attempts = _attempts(scheduler, [True, False, True, True])
    assert attempts == ["scheduled", "scheduled", "recheck", "scheduled"]


def test_first_success_after_failures_rechecks_until_recover_after_successes(
    make_monitor: MonitorFactory,
) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 1, "of": 1}, recover_after=3), now=0.0)
    attempts = _attempts(scheduler, [False, False, True, True, True, True])
    # failures: no window (of=1); first success at interval, then 2 rechecks make 3 successes.
    assert attempts == ["scheduled", "scheduled", "scheduled", "recheck", "recheck", "scheduled"]


def test_recovery_rechecks_use_recheck_interval(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(
        make_monitor(confirm={"failures": 1, "of": 1}, recover_after=2, recheck_interval=7.0), now=0.0
    )
    _run(scheduler, ok=False)
    due, next_due = _run(scheduler, ok=True, latency=0.5)
    assert next_due is not None
    assert next_due == pytest.approx(due.due_at + 0.5 + 7.0)
    assert next_due == scheduler.due_at("web")
    assert [d.attempt for d in scheduler.pop_due(next_due)] == ["recheck"]


def test_failure_during_recovery_starts_a_new_confirm_window(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 2, "of": 2}, recover_after=3), now=0.0)
    attempts = _attempts(scheduler, [False, False, True, False, False, True])
    assert attempts == ["scheduled", "recheck", "scheduled", "recheck", "recheck", "scheduled"]


def test_recheck_is_never_slower_than_the_interval(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=5.0, timeout=1.0, recheck_interval=30.0), now=0.0)
    _run(scheduler, ok=True)
    due, next_due = _run(scheduler, ok=False, latency=0.2)
    assert next_due == pytest.approx(due.due_at + 0.2 + 5.0)


def test_a_running_monitor_is_never_popped_again(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=1.0, timeout=0.5), now=0.0)
    [due] = scheduler.pop_due(10.0)
    assert scheduler.is_running("web")
    assert scheduler.pop_due(1e9) == []
    assert scheduler.next_due() is None
    assert scheduler.due_at("web") is None
    scheduler.record(due.monitor.id, True, 10.5)
    assert not scheduler.is_running("web")
    assert scheduler.next_due() is not None


def test_upsert_while_running_does_not_arm_a_second_run(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=60.0), now=0.0)
    scheduler.pop_due(100.0)
    scheduler.upsert(make_monitor(interval=30.0, timeout=5.0), now=100.0)
    assert scheduler.pop_due(1e9) == []
    next_due = scheduler.record("web", True, 101.0)
    assert next_due is not None
    assert scheduler.due_at("web") == next_due


def test_result_of_a_monitor_removed_while_running_is_ignored(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(), now=0.0)
    scheduler.pop_due(100.0)
    assert scheduler.remove("web")
    assert len(scheduler) == 0
    assert "web" not in scheduler
    assert scheduler.record("web", False, 101.0) is None
    assert scheduler.next_due() is None
    assert scheduler.pop_due(1e9) == []
    assert not scheduler.remove("web")


def test_monitor_removed_and_added_back_while_running_has_one_run(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=60.0), now=0.0)
    scheduler.pop_due(100.0)
    scheduler.remove("web")
    scheduler.upsert(make_monitor(interval=20.0, timeout=5.0), now=100.5)
    assert len(scheduler) == 1
    assert scheduler.pop_due(1e9) == []  # the old run is still in flight
    next_due = scheduler.record("web", True, 101.0)
    assert next_due is not None
    assert scheduler.pop_due(next_due)[0].monitor.interval == 20.0


def test_removing_an_idle_monitor_unschedules_it(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor("a"), now=0.0)
    scheduler.upsert(make_monitor("b"), now=0.0)
    scheduler.remove("a")
    assert [d.monitor.id for d in scheduler.pop_due(1e9)] == ["b"]
    assert scheduler.record("a", True, 1.0) is None


def test_update_with_same_interval_keeps_the_phase(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=60.0), now=0.0)
    _run(scheduler, ok=True)
    before = scheduler.due_at("web")
    scheduler.upsert(make_monitor(interval=60.0, timeout=2.0, tags=["changed"]), now=70.0)
    assert scheduler.due_at("web") == before
    assert scheduler.pop_due(1e9)[0].monitor.tags == ["changed"]


def test_interval_change_moves_next_run_to_the_new_grid_one_new_interval_on(
    make_monitor: MonitorFactory,
) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=600.0), now=0.0)
    due, _ = _run(scheduler, ok=True)
    scheduler.upsert(make_monitor(interval=60.0), now=due.due_at + 10.0)
    next_due = scheduler.due_at("web")
    assert next_due is not None
    bound = scheduler.jitter_bound(600.0) + scheduler.jitter_bound(60.0)
    assert due.due_at + 60.0 - bound <= next_due <= due.due_at + 120.0 + bound
    fresh = _scheduler()  # a prober that never ran it plans the same runs from then on
    fresh.upsert(make_monitor(interval=60.0), now=next_due - 1.0)
    assert fresh.due_at("web") == pytest.approx(next_due)


def test_interval_change_never_schedules_in_the_past(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=600.0), now=0.0)
    due, _ = _run(scheduler, ok=True)
    now = due.due_at + 250.0
    scheduler.upsert(make_monitor(interval=60.0), now=now)
    next_due = scheduler.due_at("web")
    assert next_due is not None
    assert now <= next_due <= now + 60.0 + scheduler.jitter_bound(60.0)


def test_interval_change_before_first_run_picks_a_new_offset(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=86400.0), now=0.0)
    scheduler.upsert(make_monitor(interval=60.0), now=5.0)
    next_due = scheduler.due_at("web")
    assert next_due is not None
    assert 5.0 <= next_due < 66.0


def test_interval_change_while_running_applies_when_the_result_is_recorded(
    make_monitor: MonitorFactory,
) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(interval=600.0), now=0.0)
    due_at = scheduler.next_due()
    assert due_at is not None
    scheduler.pop_due(due_at)
    scheduler.upsert(make_monitor(interval=60.0), now=due_at + 0.1)
    next_due = scheduler.record("web", True, due_at + 0.2)
    assert next_due is not None
    bound = scheduler.jitter_bound(600.0) + scheduler.jitter_bound(60.0)
    assert due_at + 60.0 - bound <= next_due <= due_at + 120.0 + bound


def test_pending_recheck_survives_a_config_update(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(), now=0.0)
    _, recheck_at = _run(scheduler, ok=False)
    scheduler.upsert(make_monitor(interval=120.0), now=1.0)
    assert scheduler.due_at("web") == recheck_at
    assert scheduler.pop_due(1e9)[0].attempt == "recheck"


def test_late_finish_skips_missed_slots_instead_of_bursting(make_monitor: MonitorFactory) -> None:
    scheduler = Scheduler(SharedCadence(0.0), jitter_fraction=0.0)
    scheduler.upsert(make_monitor(interval=10.0, timeout=5.0), now=0.0)
    due_at = scheduler.next_due()
    assert due_at is not None
    scheduler.pop_due(due_at + 35.0)  # the prober was overloaded
    next_due = scheduler.record("web", True, due_at + 35.0)
    assert next_due == pytest.approx(due_at + 40.0)


def test_pop_due_returns_earliest_first_and_honours_limit(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    for i in range(20):
        scheduler.upsert(make_monitor(f"m{i}"), now=0.0)
    first = scheduler.pop_due(1e9, limit=5)
    rest = scheduler.pop_due(1e9)
    assert len(first) == 5
    assert len(rest) == 15
    times = [d.due_at for d in first + rest]
    assert times == sorted(times)
    assert all(scheduler.is_running(f"m{i}") for i in range(20))


def test_disabled_monitor_is_removed(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(), now=0.0)
    scheduler.upsert(make_monitor(enabled=False), now=1.0)
    assert "web" not in scheduler
    assert scheduler.next_due() is None
    scheduler.upsert(make_monitor(enabled=False), now=2.0)
    assert len(scheduler) == 0


def test_release_rearms_without_counting_a_result(make_monitor: MonitorFactory) -> None:
    scheduler = _scheduler()
    scheduler.upsert(make_monitor(confirm={"failures": 2, "of": 2}), now=0.0)
    _run(scheduler, ok=False)  # opens the confirm window: next is a recheck
    [due] = scheduler.pop_due(1e9)
    scheduler.release("web", 500.0)
    assert scheduler.due_at("web") == 500.0
    [again] = scheduler.pop_due(500.0)
    assert again.attempt == due.attempt == "recheck"
    # The released run did not count: one more failure still completes the window of 2.
    next_due = scheduler.record("web", False, 501.0)
    assert next_due is not None
    assert scheduler.pop_due(1e9)[0].attempt == "scheduled"


def test_many_updates_keep_the_heap_bounded(make_monitor: MonitorFactory) -> None:
    """Re-arming leaves stale heap items behind; they are compacted, so memory stays bounded."""
    scheduler = _scheduler()
    monitors: list[Monitor] = [make_monitor(interval=float(60 + i % 2)) for i in range(5000)]
    for i, monitor in enumerate(monitors):
        scheduler.upsert(monitor, now=float(i))
    assert len(scheduler._heap) <= 2 * len(scheduler) + 64
    assert len(scheduler.pop_due(1e9)) == 1


def test_every_prober_plans_the_same_runs_whatever_its_monotonic_clock(make_monitor: MonitorFactory) -> None:
    """Two probers whose monotonic clocks differ by 5,000 s (``epoch`` is the monotonic time of the
    Unix epoch) plan every monitor at the same wall-clock times: no hidden clock or randomness."""

    def schedule(epoch: float) -> list[float]:
        scheduler = _scheduler(epoch)
        for i in range(50):
            scheduler.upsert(make_monitor(f"m{i}"), now=epoch + 1_000_000.0)
        return [d - epoch for i in range(50) if (d := scheduler.due_at(f"m{i}")) is not None]

    first, second = schedule(0.0), schedule(5000.0)
    assert len(first) == 50
    assert first == pytest.approx(second, abs=1e-6)


def test_a_monitor_handed_over_runs_at_its_next_usual_slot_never_twice(make_monitor: MonitorFactory) -> None:
    """Prober A runs a monitor, then hands it to prober B at an arbitrary moment: B's first run is
    A's next planned run, so across the handover every slot runs once — none twice, none skipped."""
    monitor = make_monitor(interval=30.0)
    for handover in (95.0, 100.37, 117.0, 129.99, 150.5):
        a = _scheduler()
        a.upsert(monitor, now=0.0)
        runs: list[float] = []
        while (due_at := a.next_due()) is not None and due_at < handover:
            a.pop_due(due_at)
            runs.append(due_at)
            a.record("web", True, due_at + 0.05)
        planned_by_a = a.next_due()
        a.remove("web")
        b = _scheduler(epoch=-777.0)  # another process: another monotonic origin
        b.upsert(monitor, now=handover - 777.0)
        b_first = b.due_at("web")
        assert b_first is not None
        assert planned_by_a == pytest.approx(b_first + 777.0, abs=1e-6)
        gap = b_first + 777.0 - runs[-1]
        assert 30.0 - 2 * a.jitter_bound(30.0) <= gap <= 30.0 + 2 * a.jitter_bound(30.0)


def test_invalid_jitter_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="jitter_fraction"):
        Scheduler(SharedCadence(0.0), jitter_fraction=0.6)
    with pytest.raises(ValueError, match="max_jitter"):
        Scheduler(SharedCadence(0.0), max_jitter=-1.0)
