"""The escalation schedule (``fao.notifier.escalation_schedule``): which step occurrences are due
at a given moment, as a pure function of the policy, the start, now and what was fired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fao.notifier.escalation_schedule import (
    StepRun,
    covers,
    due_steps,
    last_occurrence,
    latest_occurrence,
    next_due,
    occurrence_at,
)
from fao.schemas import EscalationPolicy, EscalationStep

START = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def step(after: float, **changes: Any) -> EscalationStep:
    return EscalationStep.model_validate({"after": after, "people": ["lead"], **changes})


def policy(*steps: EscalationStep, **changes: Any) -> EscalationPolicy:
    return EscalationPolicy(steps=list(steps), **changes)


def runs(*pairs: tuple[int, int]) -> set[StepRun]:
    return {StepRun(s, n) for s, n in pairs}


# Two steps: the team lead after 10 min, reminded every 5 min at most 3 times; the director's
# group after 30 min, once.
TWO_STEPS = policy(step(600, repeat_every=300, repeat=3), step(1800, people=["director"]))


@pytest.mark.parametrize(
    ("seconds", "fired", "due"),
    [
        (0, set(), []),
        (599.999, set(), []),
        (600, set(), [StepRun(0, 0)]),
        (600, runs((0, 0)), []),
        (899, runs((0, 0)), []),
        (900, runs((0, 0)), [StepRun(0, 1)]),
        (1200, runs((0, 0), (0, 1)), [StepRun(0, 2)]),
        (1500, runs((0, 0), (0, 1), (0, 2)), [StepRun(0, 3)]),
        # repeat=3: no fourth reminder, ever
        (1799, runs((0, 0), (0, 1), (0, 2), (0, 3)), []),
        (99_999, runs((0, 0), (0, 1), (0, 2), (0, 3), (1, 0)), []),
        # the second step comes due on its own; the first keeps its own schedule
        (1800, runs((0, 0), (0, 1), (0, 2), (0, 3)), [StepRun(1, 0)]),
    ],
)
def test_due_steps_follow_after_and_repeat_every_up_to_repeat(
    seconds: float, fired: set[StepRun], due: list[StepRun]
) -> None:
    """A step is due at ``after``; its n-th reminder at ``after + n × repeat_every`` for n ≤
    ``repeat``; nothing fired is due again."""
    assert due_steps(TWO_STEPS, START, at(seconds), fired) == due


def test_a_step_missed_while_down_fires_once_as_its_latest_occurrence() -> None:
    """The notifier was down from before the first step until long after: on start each step is
    due once — its latest occurrence that has come, not every missed reminder."""
    assert due_steps(TWO_STEPS, START, at(1300), set()) == [StepRun(0, 2)]
    assert due_steps(TWO_STEPS, START, at(5000), set()) == [StepRun(0, 3), StepRun(1, 0)]
    # ... and once fired, the skipped earlier reminders never come back
    assert due_steps(TWO_STEPS, START, at(5000), runs((0, 3), (1, 0))) == []
    assert due_steps(TWO_STEPS, START, at(1400), runs((0, 2))) == []


def test_down_between_two_reminders_fires_the_latest_only() -> None:
    """Fired up to reminder 1, down during reminders 2 and 3: reminder 3 only, once."""
    assert due_steps(TWO_STEPS, START, at(1650), runs((0, 0), (0, 1))) == [StepRun(0, 3)]


def test_a_step_without_repeat_every_fires_once() -> None:
    once = policy(step(60, repeat=5))
    assert due_steps(once, START, at(60), set()) == [StepRun(0, 0)]
    assert due_steps(once, START, at(10_000), runs((0, 0))) == []
    assert last_occurrence(once.steps[0]) == 0
    assert next_due(once, START, runs((0, 0))) is None


def test_after_zero_is_due_at_the_start() -> None:
    assert due_steps(policy(step(0)), START, START, set()) == [StepRun(0, 0)]
    assert due_steps(policy(step(0)), START, START - timedelta(microseconds=1), set()) == []


@pytest.mark.parametrize(
    ("changed", "seconds", "fired", "due"),
    [
        # a step added after the timer started fires when its time (from the start) comes, at once if past
        (
            policy(step(600, repeat_every=300, repeat=3), step(700, people=["x"])),
            800,
            runs((0, 0)),
            [StepRun(1, 0)],
        ),
        # a removed step is never due; what was fired at other positions stays fired
        (policy(step(600, repeat_every=300, repeat=3)), 5000, runs((0, 3), (1, 0)), []),
        # fewer reminders than already sent: nothing more
        (policy(step(600, repeat_every=300, repeat=1), step(1800)), 1700, runs((0, 0), (0, 1), (0, 2)), []),
        # a longer interval: the latest occurrence under it was already fired (n=1 ≤ 2): nothing again
        (policy(step(600, repeat_every=600, repeat=3), step(1800)), 1300, runs((0, 0), (0, 1), (0, 2)), []),
        # ... until its next occurrence beyond what was fired comes (n=3 at 600 + 3×600)
        (
            policy(step(600, repeat_every=600, repeat=3), step(1800)),
            2400,
            runs((0, 0), (0, 1), (0, 2), (1, 0)),
            [StepRun(0, 3)],
        ),
        # a step moved later than now is not due any more; fired stays fired
        (policy(step(3600), step(7200)), 1900, runs((0, 0), (1, 0)), []),
        # reminders switched on for a step that fired once: the reminder due now fires
        (
            policy(step(600), step(1800, repeat_every=60, repeat=2)),
            1925,
            runs((0, 0), (1, 0)),
            [StepRun(1, 2)],
        ),
    ],
)
def test_a_policy_changed_after_the_timer_started_applies_from_the_original_start(
    changed: EscalationPolicy, seconds: float, fired: set[StepRun], due: list[StepRun]
) -> None:
    """Steps are known by position; a changed policy never fires again what fired at a position,
    counts from the original start, and fires a step whose time has passed once."""
    assert due_steps(changed, START, at(seconds), fired) == due


def test_occurrence_times_and_latest_occurrence() -> None:
    lead = TWO_STEPS.steps[0]
    assert [occurrence_at(lead, START, n) for n in range(4)] == [at(600), at(900), at(1200), at(1500)]
    assert latest_occurrence(lead, START, at(599)) is None
    assert latest_occurrence(lead, START, at(600)) == 0
    assert latest_occurrence(lead, START, at(1199.5)) == 1
    assert latest_occurrence(lead, START, at(10**6)) == 3
    assert last_occurrence(lead) == 3


def test_next_due_is_the_earliest_occurrence_not_fired_and_none_when_all_fired() -> None:
    assert next_due(TWO_STEPS, START, set()) == at(600)
    assert next_due(TWO_STEPS, START, runs((0, 0))) == at(900)
    assert next_due(TWO_STEPS, START, runs((0, 3))) == at(1800)
    assert next_due(TWO_STEPS, START, runs((0, 3), (1, 0))) is None
    # a fired occurrence beyond the (lowered) last one counts as finished
    assert next_due(policy(step(60, repeat_every=60, repeat=1)), START, runs((0, 3))) is None


def test_covers_only_the_policy_severities() -> None:
    default = policy(step(60))
    assert covers(default, "critical")
    assert covers(default, "major")
    assert not covers(default, "minor")
    assert covers(policy(step(60), severities=["minor"]), "minor")
    assert not covers(None, "critical")


def test_step_run_keys_round_trip_and_order() -> None:
    assert StepRun(2, 11).key == "2.11"
    assert StepRun.parse("2.11") == StepRun(2, 11)
    assert sorted([StepRun(1, 0), StepRun(0, 3), StepRun(0, 1)]) == [
        StepRun(0, 1),
        StepRun(0, 3),
        StepRun(1, 0),
    ]
