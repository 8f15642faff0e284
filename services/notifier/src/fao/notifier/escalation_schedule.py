"""When an escalation policy's steps are due: pure functions of the policy, the start, now and the
steps already fired (no I/O, no clock of their own).

A step's *occurrences* are numbered ``n = 0, 1, …``: occurrence 0 is at ``started + after``, and,
when the step has ``repeat_every``, reminder ``n`` (1 ≤ n ≤ ``repeat``) at
``started + after + n × repeat_every``. ``repeat`` counts the reminders after the first message, so
a step tells its people at most ``1 + repeat`` times. Each step repeats on its own schedule: a
later step becoming due does not stop an earlier step's reminders (both stop when the incident is
acknowledged or resolved).

What is *due* at ``now`` is, per step, only its **latest** occurrence that has come, and only if
no occurrence of that step as late or later was fired: a notifier that was down while a step (or
several of its reminders) came due fires it once on start, never once per missed reminder.

Steps are known by their position in the policy (``StepRun.step``). A policy changed while a timer
runs applies from the next check, measured from the original start: a removed step no longer
fires, a step with a new or larger position fires when its time has come (at once, once, if that
time is past), an occurrence no later than one already fired at that position never fires again,
and a lowered ``repeat`` or a longer ``repeat_every`` never fires what was fired already.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fao.schemas import EscalationPolicy, EscalationStep, Severity


@dataclass(frozen=True, order=True)
class StepRun:
    """One occurrence of one step: ``step`` (its position in the policy) and ``n`` (0: the first
    message, n ≥ 1: the n-th reminder)."""

    step: int
    n: int

    @property
    def key(self) -> str:
        """``"<step>.<n>"``: how it is stored (``fired``) and named in claim ids."""
        return f"{self.step}.{self.n}"

    @classmethod
    def parse(cls, key: str) -> StepRun:
        step, _, n = key.partition(".")
        return cls(int(step), int(n))


def covers(policy: EscalationPolicy | None, severity: Severity) -> bool:
    """Whether incidents of ``severity`` escalate under ``policy``."""
    return policy is not None and severity in policy.severities


def last_occurrence(step: EscalationStep) -> int:
    """The number of a step's last occurrence (0 for a step without reminders)."""
    return step.repeat if step.repeat_every is not None else 0


def occurrence_at(step: EscalationStep, started: datetime, n: int) -> datetime:
    """When occurrence ``n`` of ``step`` comes (``n`` ≤ ``last_occurrence(step)``)."""
    every = step.repeat_every or 0.0
    return started + timedelta(seconds=step.after + n * every)


def latest_occurrence(step: EscalationStep, started: datetime, now: datetime) -> int | None:
    """The number of the latest occurrence of ``step`` that has come at ``now``; None before the first."""
    first = started + timedelta(seconds=step.after)
    if now < first:
        return None
    if step.repeat_every is None:
        return 0
    passed = (now - first) // timedelta(seconds=step.repeat_every)
    return min(step.repeat, passed)


def _fired_max(fired: Iterable[StepRun]) -> dict[int, int]:
    """Per step position, the latest occurrence fired."""
    latest: dict[int, int] = {}
    for run in fired:
        latest[run.step] = max(run.n, latest.get(run.step, -1))
    return latest


def due_steps(
    policy: EscalationPolicy, started: datetime, now: datetime, fired: Iterable[StepRun]
) -> list[StepRun]:
    """The occurrences to fire at ``now``, at most one per step, in step order (module docstring)."""
    done = _fired_max(fired)
    due: list[StepRun] = []
    for index, step in enumerate(policy.steps):
        latest = latest_occurrence(step, started, now)
        if latest is not None and latest > done.get(index, -1):
            due.append(StepRun(index, latest))
    return due


def next_due(policy: EscalationPolicy, started: datetime, fired: Iterable[StepRun]) -> datetime | None:
    """When the next occurrence not fired yet comes (it may be past); None when every step has
    fired its last occurrence, i.e. the escalation has nothing more to say."""
    done = _fired_max(fired)
    times = [
        occurrence_at(step, started, done.get(index, -1) + 1)
        for index, step in enumerate(policy.steps)
        if done.get(index, -1) < last_occurrence(step)
    ]
    return min(times, default=None)
