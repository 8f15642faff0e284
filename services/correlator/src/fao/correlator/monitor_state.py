"""A monitor's state as the correlator keeps it: one ``ZoneState`` per zone, combined by quorum.

Versioned pydantic model (``schema_version``), stored as its JSON-mode dump plus ``_id``; unknown
fields are ignored when read, and ``from_doc`` migrates the version-1 layout (a single window, no
zones) so an upgrade keeps every monitor's history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fao.correlator.flapping import percent_state_change, still_flapping
from fao.correlator.state_machine import ZoneState
from fao.schemas import Monitor

Status = Literal["unknown", "up", "down"]

# Idempotence marks of sources (zone/prober) that sent nothing for this long are dropped: prober
# ids change on every deploy, and a redelivered result is always far younger than this.
APPLIED_RETENTION = timedelta(minutes=10)
# Successes in a row a zone needs before its monitor counts as fine for its dependants' holds.
CLEAN_RUN = 3


def stale_after(monitor: Monitor) -> timedelta:
    """A zone with no result for this long is unknown (neither up nor down)."""
    return timedelta(seconds=3 * monitor.interval + monitor.timeout + 10.0)


class MonitorState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[2] = 2
    monitor_id: str
    system_id: str = ""
    zones: dict[str, ZoneState] = Field(default_factory=dict)
    # (zone/prober) → started_at of the newest result applied from it: the idempotence guard.
    applied: dict[str, datetime] = Field(default_factory=dict)
    status: Status = "unknown"  # the quorum of zones
    down_since: datetime | None = None
    cause: str = ""
    flapping: bool = False
    problem_since: datetime | None = None  # down or flapping since
    clear_since: datetime | None = None  # neither since (after having been)
    # A person resolved its incident while it still failed: no new incident until it recovers.
    silenced: bool = False
    # max_latency: for the last ``of`` successful results, whether each was slower than max_ms.
    slow_window: tuple[bool, ...] = ()
    slow: bool = False
    expiring: bool = False  # a TLS check's certificate has fewer than warn_days left
    # The newest failing result's screenshot (an object name in fao-screenshots), until it is up.
    screenshot: str | None = None

    @property
    def problem(self) -> bool:
        return (self.status == "down" or self.flapping) and not self.silenced

    @property
    def last_at(self) -> datetime | None:
        times = [z.last_at for z in self.zones.values() if z.last_at is not None]
        return max(times) if times else None

    def essential(self) -> tuple[object, ...]:
        """What decisions depend on; a result that leaves it unchanged need not be written."""
        return (
            self.status,
            self.flapping,
            self.silenced,
            self.slow,
            self.expiring,
            self.screenshot,
            self.problem_since,
            self.clear_since,
            self.down_since,
            tuple(sorted((name, z.status, z.down_since) for name, z in self.zones.items())),
        )

    def fine_after(self, t0: datetime) -> bool:
        """Known to be fine: up, stable, a successful result newer than ``t0``, and in that zone no
        failure among its last ``CLEAN_RUN`` results (all of them when it has fewer). A parent that
        failed a check a moment ago and passes now may be flapping faster than its checks catch
        (found black-box: a core switch down 3 s in every 11 passed between its failures, and each
        dependant that failed meanwhile alerted on its own): its dependants' alerts wait for it —
        at most the parent's confirmation time (``policy.hold_until``), and a dependant that
        recovers meanwhile never alerts."""
        return (
            self.status == "up"
            and not self.flapping
            and any(
                z.last_at is not None
                and z.last_at > t0
                and z.window
                and z.window[-1].ok
                and z.ok_streak >= min(CLEAN_RUN, len(z.history))
                for z in self.zones.values()
            )
        )

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.monitor_id, **self.model_dump(mode="python")}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MonitorState:
        data = {k: v for k, v in doc.items() if k != "_id"}
        data["monitor_id"] = doc["_id"]
        if data.get("schema_version", 1) == 1:
            data = _migrate_v1(data)
        return cls.model_validate(data)


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept one window for all zones and a list of applied marks."""
    status = data.get("status", "unknown")
    zone = ZoneState(
        status=status,
        window=tuple(data.get("window", [])),
        ok_streak=data.get("ok_streak", 0),
        ok_since=data.get("ok_since"),
        down_since=data.get("down_since"),
        cause=data.get("cause", ""),
        last_at=max((a["at"] for a in data.get("applied", [])), default=None),
    )
    return {
        "monitor_id": data["monitor_id"],
        "system_id": data.get("system_id", ""),
        "zones": {"default": zone},
        "applied": {a["source"]: a["at"] for a in data.get("applied", [])},
        "status": "down"
        if status in ("down", "recovering")
        else ("up" if status != "unknown" else "unknown"),
        "down_since": data.get("down_since"),
        "cause": data.get("cause", ""),
        "problem_since": data.get("down_since") if status in ("down", "recovering") else None,
    }


def _quorum_time(times: list[datetime | None], quorum: int) -> datetime | None:
    """When a quorum was reached: the ``quorum``-th earliest of the zones' times."""
    known = sorted(t for t in times if t is not None)
    return known[quorum - 1] if len(known) >= quorum else (known[-1] if known else None)


def combine(state: MonitorState, monitor: Monitor, at: datetime) -> MonitorState:
    """Recompute the quorum status and flapping from the zones (``at``: the newest result's time).

    A zone is counted only while fresh (a result within ``stale_after`` of ``at``); ``down`` needs
    a quorum of zones confirmed down, ``up`` a quorum not down; anything in between keeps the
    previous status, so a monitor does not bounce while zones disagree or fall silent.
    """
    horizon = at - stale_after(monitor)
    fresh = [
        z
        for name, z in state.zones.items()
        if name in monitor.zones and z.last_at is not None and z.last_at >= horizon
    ]
    quorum = monitor.effective_quorum
    down = [z for z in fresh if z.status in ("down", "recovering")]
    up = [z for z in fresh if z.status in ("up", "suspect")]
    status: Status = state.status
    if len(down) >= quorum:
        status = "down"
    elif len(up) >= quorum:
        status = "up"
    percents = sorted((percent_state_change(z.history) for z in fresh), reverse=True)
    percent = percents[quorum - 1] if len(percents) >= quorum else 0.0
    flapping = still_flapping(state.flapping, percent)

    update: dict[str, Any] = {"status": status, "flapping": flapping}
    if status == "down":
        update["down_since"] = (
            state.down_since if state.status == "down" else _quorum_time([z.down_since for z in down], quorum)
        )
        update["cause"] = max(down, key=lambda z: z.last_at or at).cause or state.cause
    else:
        update["down_since"] = None
        update["cause"] = "" if status == "up" else state.cause
    problem = (status == "down" or flapping) and not state.silenced
    if problem and not state.problem:
        update["problem_since"] = update["down_since"] if status == "down" else at
        update["clear_since"] = None
    elif not problem and state.problem:
        update["problem_since"] = None
        recovered = _quorum_time([z.ok_since for z in up], quorum) if status == "up" else None
        update["clear_since"] = recovered or at
    if state.silenced and status == "up" and not flapping:
        update["silenced"] = False
    return state.model_copy(update=update)


def prune_applied(applied: dict[str, datetime], newest: datetime) -> dict[str, datetime]:
    horizon = newest - APPLIED_RETENTION
    return {source: at for source, at in applied.items() if at >= horizon}
