"""Per-monitor state machine with X-of-Y confirmation. Pure: no I/O, no clock.

    unknown ─ok→ up ─fail→ suspect ─(≥X of last Y fail)→ down ─ok→ recovering ─(N ok in a row)→ up
                 ↑          │ok, window clears                ↑         │fail
                 └──────────┘                                 └─────────┘

``decide(state, result, policy)`` returns the next state and, on a confirmed change, one
``Transition``. Alerts hang off transitions only, never off individual failing results.

Re-applying a result is harmless: a result not newer than the last one applied from the same
zone and prober is ignored, so a redelivered message after a crash cannot count twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from fao.schemas import CheckResult, ConfirmPolicy

Status = Literal["unknown", "up", "suspect", "down", "recovering"]


@dataclass(frozen=True)
class Sample:
    """One result as the window remembers it."""

    ok: bool
    at: datetime
    detail: str = ""


@dataclass(frozen=True)
class MonitorState:
    monitor_id: str
    status: Status = "unknown"
    window: tuple[Sample, ...] = ()
    ok_streak: int = 0
    ok_since: datetime | None = None
    down_since: datetime | None = None
    cause: str = ""
    # (zone/prober) → started_at of the newest result applied from it: the idempotence guard.
    applied: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """A confirmed change: the monitor went down (since ``since``) or came back up (at ``at``)."""

    kind: Literal["down", "up"]
    monitor_id: str
    since: datetime
    at: datetime
    cause: str


@dataclass(frozen=True)
class Decision:
    state: MonitorState
    transition: Transition | None = None
    applied: bool = True


def is_settled(state: MonitorState) -> bool:
    """Up with no failure left in the window: one more success cannot start anything."""
    return state.status == "up" and all(sample.ok for sample in state.window)


def _source(result: CheckResult) -> str:
    return f"{result.zone}/{result.prober_id}"


def _describe(result: CheckResult) -> str:
    return result.detail or str(result.error_kind)


def decide(
    state: MonitorState, result: CheckResult, policy: ConfirmPolicy, recover_after: int = 1
) -> Decision:
    """Fold one result into ``state``; see the module docstring for the transitions."""
    source = _source(result)
    last = state.applied.get(source)
    if last is not None and result.started_at <= last:
        return Decision(state, None, applied=False)
    applied = {**state.applied, source: result.started_at}
    sample = Sample(result.ok, result.started_at, "" if result.ok else _describe(result))
    window = (*state.window, sample)[-policy.of :]
    ok_streak = state.ok_streak + 1 if result.ok else 0
    ok_since = (state.ok_since or sample.at) if result.ok else None
    cause = state.cause if result.ok else sample.detail
    nxt = replace(state, window=window, ok_streak=ok_streak, ok_since=ok_since, cause=cause, applied=applied)

    if state.status in ("down", "recovering"):
        assert state.down_since is not None
        if not result.ok:
            return Decision(replace(nxt, status="down"))
        if ok_streak < recover_after:
            return Decision(replace(nxt, status="recovering"))
        # Recovered: the downtime ends at the first success of the streak that confirmed it.
        assert ok_since is not None
        up = replace(nxt, status="up", window=(sample,), down_since=None, cause="")
        return Decision(up, Transition("up", state.monitor_id, state.down_since, ok_since, state.cause))

    failures = sum(1 for s in window if not s.ok)
    if failures >= policy.failures:
        # Confirmed: the outage started at the oldest failure of the confirming window.
        since = next(s.at for s in window if not s.ok)
        down = replace(nxt, status="down", down_since=since)
        return Decision(down, Transition("down", state.monitor_id, since, sample.at, cause))
    return Decision(replace(nxt, status="up" if result.ok else "suspect"))
