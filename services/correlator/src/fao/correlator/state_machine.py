"""Per-zone confirmation with X-of-Y. Pure: no I/O, no clock.

    unknown ─ok→ up ─fail→ suspect ─(≥X of last Y fail)→ down ─ok→ recovering ─(N ok in a row)→ up
                 ↑          │ok, window clears                ↑         │fail
                 └──────────┘                                 └─────────┘

``confirm(zone, sample, policy, recover_after)`` returns the zone's next state. Each zone a monitor
runs in has its own window: the incident policy (``policy.py``) combines zones by quorum.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from fao.schemas import ConfirmPolicy

ZoneStatus = Literal["unknown", "up", "suspect", "down", "recovering"]

# Raw outcomes kept per zone for flap detection (Nagios uses the last 21 checks).
FLAP_HISTORY = 21


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Sample(_State):
    """One result as the confirmation window remembers it."""

    ok: bool
    at: datetime
    detail: str = ""


class ZoneState(_State):
    """One zone's view of one monitor."""

    status: ZoneStatus = "unknown"
    window: tuple[Sample, ...] = ()
    ok_streak: int = 0
    ok_since: datetime | None = None  # first success of the current run of successes
    down_since: datetime | None = None  # first failure of the confirming window
    cause: str = ""
    last_at: datetime | None = None  # newest result applied from this zone
    history: tuple[bool, ...] = ()  # the last FLAP_HISTORY raw outcomes, oldest first

    @property
    def settled(self) -> bool:
        """Up with no failure anywhere it remembers: one more success changes nothing that matters."""
        return self.status == "up" and all(s.ok for s in self.window) and all(self.history)


def confirm(zone: ZoneState, sample: Sample, policy: ConfirmPolicy, recover_after: int = 1) -> ZoneState:
    """Fold one (newer) sample into the zone's state; see the module docstring."""
    window = (*zone.window, sample)[-policy.of :]
    ok_streak = zone.ok_streak + 1 if sample.ok else 0
    ok_since = (zone.ok_since or sample.at) if sample.ok else None
    cause = zone.cause if sample.ok else sample.detail
    history = (*zone.history, sample.ok)[-FLAP_HISTORY:]
    last_at = sample.at if zone.last_at is None else max(zone.last_at, sample.at)
    nxt = zone.model_copy(
        update={
            "window": window,
            "ok_streak": ok_streak,
            "ok_since": ok_since,
            "cause": cause,
            "history": history,
            "last_at": last_at,
        }
    )
    if zone.status in ("down", "recovering"):
        if not sample.ok:
            return nxt.model_copy(update={"status": "down"})
        if ok_streak < recover_after:
            return nxt.model_copy(update={"status": "recovering"})
        return nxt.model_copy(update={"status": "up", "window": (sample,), "down_since": None, "cause": ""})
    failures = sum(1 for s in window if not s.ok)
    if failures >= policy.failures:
        since = next(s.at for s in window if not s.ok)
        return nxt.model_copy(update={"status": "down", "down_since": since})
    return nxt.model_copy(update={"status": "up" if sample.ok else "suspect"})
