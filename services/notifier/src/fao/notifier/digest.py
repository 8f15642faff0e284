"""Storm digests: when one LINE group would get many messages at once, it gets one digest instead.

Every message to a group falls in one of the group's *windows*: a window opens with the first
message after the previous one closed and lasts ``StormPolicy.window`` seconds (W;
``digest_only_window``, D, when the LINE quota runs low: ``fao.notifier.quota``). A window that
opens less than a window length after one that overflowed (had digest items) *continues* the
storm: its budget is 0, so a storm longer than W (or the recoveries right after it) adds one
digest per window, not K more singles each time. Within a
window the group gets at most ``budget`` (K) messages one by one — *singles*, recorded as usual as
``pending`` deliveries; every further message of the window is recorded as a *digest item*: the
same delivery record (same claim id ``<event_id>:line:<group>``, so a redelivered event is still
recorded once) with status ``digested``, ``digest`` = the digest's claim id and the entry to list
(``digest_entry``: system name, severity, who acknowledged). When the window ends a *flush*
records **one** delivery holding every item of the window (claim id
``"<group>:digest:<window start>"``, kind ``digest``, rendered by ``render_digest``) and wakes the
group's worker, which sends it like any delivery (claim before send, the claim's retry key).

Where a message goes (``place``, pure):

- its incident's earlier message to the group is a digest item whose digest is not delivered yet
  (not flushed, or not final) → a digest item too, whatever the budget: a group never hears the
  end of a problem before the problem (an incident that went down and came back within one window
  is one line, "back to normal" added);
- its incident's earlier message is a single not final yet → a single, whatever the budget: the
  incident's lane (``deliveries.plan_lane``) keeps them in order;
- otherwise, in digest-only mode (the quota runs low) only a problem of a **critical** system may
  be a single; in both modes a single needs room in the window's budget; else a digest item.

A team may set its own ``storm: {budget, window}`` (``Team.storm``; ``budget: 0`` turns storm
digests off for it); a group two teams share follows the first team's. Every message the
dispatcher records for a LINE target counts (problem, acknowledged, fixed, and escalation steps,
which ``fao.notifier.escalation`` records here too; other channels are recorded outside this): a
recovery storm is digested like
the storm before it; only singles use the budget — a digest counts as nothing, forced singles
count too (they are sent). Digest deliveries of a group share one lane (``incident_id``
``"digest"``), ordered by window start, so digests reach a group in order.

Where an incident's latest message to a group went is kept in memory until its "fixed" message,
so placing a follow-up reads one record by ``_id`` (the one lookup FerretDB pushes down); after a
restart it reads the incident's records (a scan) once.

Durable and crash-safe. The windows live in memory, rebuilt at start (``load``) from what is
stored: every single carries its window (``window_start``, ``window_end``), and the first item of
a window inserts the window's document in ``digests`` (``_id`` = the digest's claim id, ``status``
``open``; an insert, so it is made once) before the item is recorded. A flush reads the window's
items (``deliveries`` with that ``digest``), records the digest delivery (an insert with the
unique claim id: a repeated flush records nothing new), then marks the window ``flushed``. A crash
anywhere in between leaves the window ``open``: the next process flushes it at its first tick,
exactly once. A window whose items were never written (a crash between the two inserts) is marked
``flushed`` with no delivery. What a restart forgets: that a window already flushed had
overflowed (the next window starts with a fresh budget: at most K more singles). Recording and
flushing hold one lock, so an item is never written into a window being flushed: it goes into a
window whose end is still ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.deliveries import (
    DELIVERIES,
    FINAL_STATUSES,
    UNDELIVERED_STATUSES,
    Delivery,
    DeliveryStore,
    claim_id,
)
from fao.notifier.render import Catalogue, RenderedMessage, message_fields
from fao.notifier.render_digest import DigestEntry, EntryKind, render_digest
from fao.notifier.targets import TargetPlan
from fao.runtime.store import Document, IndexSpec
from fao.schemas import IncidentEvent, StormSettings, System

log = structlog.get_logger()

DIGESTS: Final = "digests"
DIGEST_LANE: Final = "digest"
"""The ``incident_id`` of digest deliveries: a group's digests form one lane, in window order."""
INDEXES: Final = [IndexSpec(DIGESTS, [("status", 1)])]

Placement = Literal["single", "digest"]
Constraint = Literal["free", "single", "digest"]


@dataclass(frozen=True)
class StormPolicy:
    """How many messages a group gets one by one, and how they are gathered otherwise."""

    budget: int | None = 3
    """Singles per window (K); None: no storm limit (digests only in digest-only mode)."""
    window: float = 60.0
    """Seconds a window lasts (W)."""
    digest_only_window: float = 900.0
    """Seconds a window lasts while digest-only (D): one digest at most this often."""
    max_listed: int = 10
    """Incidents a digest lists by name (N); the rest are counted ("และอีก M ระบบ")."""


@dataclass(frozen=True)
class Window:
    """One window of one group's messages."""

    target: str
    start: datetime
    end: datetime
    digest_only: bool = False
    singles: int = 0
    continued: bool = False
    """It follows a window that overflowed, within one window length: the storm goes on, so its
    budget is 0 (every free message is a digest item)."""
    overflowed: bool = False
    """It has digest items."""

    @property
    def digest_id(self) -> str:
        return digest_claim_id(self.target, self.start)

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def digest_claim_id(target: str, start: datetime) -> str:
    """``"<group>:digest:<window start, ISO 8601>"``: the one digest of one window."""
    return f"{target}:digest:{start.isoformat()}"


def team_policy(policy: StormPolicy, settings: StormSettings | None) -> StormPolicy:
    """``policy`` with a team's own ``storm`` settings (``budget: 0``: no storm limit)."""
    if settings is None:
        return policy
    budget = policy.budget if settings.budget is None else (settings.budget or None)
    window = policy.window if settings.window is None else settings.window
    return replace(policy, budget=budget, window=window)


def current_window(
    window: Window | None, target: str, now: datetime, policy: StormPolicy, digest_only: bool
) -> Window:
    """``window`` while it lasts, else a new one opening ``now`` (W long, or D when digest-only),
    *continued* when ``window`` overflowed and ended less than a window length ago. Its start is
    cut to whole milliseconds, what BSON keeps: the digest's claim id derives from it, and a
    restarted notifier rebuilds the id from the stored start."""
    if window is not None and now < window.end:
        return window
    start = now.replace(microsecond=now.microsecond // 1000 * 1000)
    length = timedelta(seconds=policy.digest_only_window if digest_only else policy.window)
    continued = window is not None and window.overflowed and now < window.end + length
    return Window(target, start, start + length, digest_only, continued=continued)


def place(
    window: Window, policy: StormPolicy, *, digest_only: bool, urgent: bool, constraint: Constraint
) -> Placement:
    """Single or digest item (the rules in the module docstring). ``urgent``: a critical system's
    problem, which digest-only mode still sends at once."""
    if constraint != "free":
        return constraint
    if digest_only and not urgent:
        return "digest"
    if window.continued or (policy.budget is not None and window.singles >= policy.budget):
        return "digest"
    return "single"


@dataclass(frozen=True)
class Earlier:
    """An earlier message of the same incident to the same group."""

    status: str
    digest_pending: bool = False
    """A digest item whose digest is not delivered yet (not flushed, or its delivery not final)."""


def constraint_of(earlier: Sequence[Earlier]) -> Constraint:
    """What an incident's earlier messages to a group impose on its next one."""
    if any(e.status == "digested" and e.digest_pending for e in earlier):
        return "digest"
    if any(e.status in UNDELIVERED_STATUSES for e in earlier):
        return "single"
    return "free"


class PushCosts(Protocol):
    """What a push to a group costs (``fao.notifier.quota.QuotaWatch``)."""

    def cost_of(self, target: str) -> int | None:
        """Messages one push to ``target`` uses up (its member count), None when unknown."""
        ...

    def charged(self, cost: int) -> None:
        """A push of ``cost`` was recorded."""
        ...


def entry_doc(
    event: IncidentEvent, system: System | None, message: RenderedMessage, cat: Catalogue
) -> Document:
    """What a digest item lists (stored with the item, so a flush needs nothing else)."""
    kind = message.kind if message.kind in ("problem", "acknowledged", "fixed") else "problem"
    fields = message_fields(event, system, cat, kind)
    return {
        "system": fields.system,
        "severity": event.incident.severity,
        "actor": fields.actor if kind == "acknowledged" else "",
    }


def entry_from_doc(doc: Mapping[str, Any]) -> DigestEntry:
    entry = doc.get("digest_entry") or {}
    stored = doc.get("kind")
    kind: EntryKind = (
        "acknowledged" if stored == "acknowledged" else "fixed" if stored == "fixed" else "problem"
    )
    return DigestEntry(
        incident_id=str(doc["incident_id"]),
        kind=kind,
        system=str(entry.get("system") or doc["incident_id"]),
        severity=entry.get("severity") or "major",
        at=doc.get("at") or doc["created_at"],
        actor=str(entry.get("actor") or ""),
    )


class StormDigests:
    """The windows, digest items and flushes of every group (see the module docstring)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        deliveries: DeliveryStore,
        catalogue: Catalogue,
        policy: StormPolicy,
        *,
        digest_only: Callable[[], bool] | None = None,
        costs: PushCosts | None = None,
    ) -> None:
        self._deliveries_col = db[DELIVERIES]
        self._digests = db[DIGESTS]
        self._store = deliveries
        self._catalogue = catalogue
        self.policy = policy
        self._digest_only = digest_only or (lambda: False)
        self._costs = costs
        self._windows: dict[str, Window] = {}
        self._open: dict[str, Window] = {}  # digest id → its window, not flushed yet
        # (incident, group) → where its latest message went, until its "fixed" message
        self._last: dict[tuple[str, str], tuple[Placement, str]] = {}
        self._lock = asyncio.Lock()

    # -- start-up -------------------------------------------------------------------------------

    async def load(self, now: datetime) -> None:
        """Rebuild the windows: the open digests (flushed at the first tick once due) and the
        singles of windows still running (their budget)."""
        async with self._lock:
            self._windows.clear()
            self._open.clear()
            async for doc in self._digests.find({"status": "open"}):
                window = Window(
                    doc["target"],
                    doc["window_start"],
                    doc["window_end"],
                    bool(doc.get("digest_only")),
                    continued=bool(doc.get("continued")),
                    overflowed=True,
                )
                self._open[window.digest_id] = window
                self._keep_latest(window)
            singles: dict[tuple[str, datetime], int] = {}
            ends: dict[tuple[str, datetime], tuple[datetime, bool, bool]] = {}
            async for doc in self._deliveries_col.find({"window_end": {"$gt": now}}):
                key = (doc["target"], doc["window_start"])
                if doc.get("status") != "digested":
                    singles[key] = singles.get(key, 0) + 1
                flags = (bool(doc.get("window_digest_only")), bool(doc.get("window_continued")))
                ends[key] = (doc["window_end"], *flags)
            for (target, start), (end, digest_only, continued) in ends.items():
                count = singles.get((target, start), 0)
                self._keep_latest(Window(target, start, end, digest_only, count, continued=continued))
        if self._open:
            log.info("digests_to_flush", digests=sorted(self._open))

    def _keep_latest(self, window: Window) -> None:
        known = self._windows.get(window.target)
        if known is None or window.start > known.start:
            self._windows[window.target] = window
        elif window.start == known.start:
            self._windows[window.target] = replace(
                known,
                singles=max(known.singles, window.singles),
                continued=known.continued or window.continued,
                overflowed=known.overflowed or window.overflowed,
            )

    # -- recording ------------------------------------------------------------------------------

    async def record(
        self,
        event: IncidentEvent,
        target: str,
        message: RenderedMessage,
        now: datetime,
        *,
        system: System | None,
        storm: StormSettings | None = None,
        **extra: Any,
    ) -> tuple[Delivery, bool]:
        """Record ``event``'s message to ``target`` as a single or a digest item (``extra`` is
        stored on the record), by the team's ``storm`` settings (the notifier's by default). A
        redelivered event returns its first record and False."""
        async with self._lock:
            existing = await self._store.get(claim_id(event.event_id, target))
            if existing is not None:
                return await self._store.record(event, target, message, now, **extra)
            digest_only = self._digest_only()
            policy = team_policy(self.policy, storm)
            window = current_window(self._windows.get(target), target, now, policy, digest_only)
            constraint = (
                await self._constraint(event.incident.id, target) if message.kind != "problem" else "free"
            )
            urgent = message.kind == "problem" and event.incident.severity == "critical"
            placement = place(window, policy, digest_only=digest_only, urgent=urgent, constraint=constraint)
            bound = log.bind(target=target, incident=event.incident.id, window=window.start.isoformat())
            if placement == "single":
                cost = self._costs.cost_of(target) if self._costs is not None else None
                fields = {**extra, **({"cost": cost} if cost is not None else {})}
                delivery, fresh = await self._store.record(
                    event, target, message, now,
                    window_start=window.start, window_end=window.end,
                    window_digest_only=window.digest_only, window_continued=window.continued, **fields,
                )  # fmt: skip
                self._windows[target] = replace(window, singles=window.singles + 1)
                self._remember(event, target, message, ("single", delivery.id))
                if fresh and cost is not None and self._costs is not None:
                    self._costs.charged(cost)
                if constraint == "single":
                    bound.info("single_kept_in_incident_order", kind=message.kind)
                return delivery, fresh
            await self._open_digest(window)
            delivery, fresh = await self._store.record(
                event, target, message, now,
                status="digested", digest=window.digest_id, cost=0,
                digest_entry=entry_doc(event, system, message, self._catalogue),
                window_start=window.start, window_end=window.end,
                window_digest_only=window.digest_only, window_continued=window.continued, **extra,
            )  # fmt: skip
            self._windows[target] = replace(window, overflowed=True)
            self._remember(event, target, message, ("digest", window.digest_id))
            bound.info("delivery_digested", kind=message.kind, digest=window.digest_id, forced=constraint)
            return delivery, fresh

    def _remember(
        self, event: IncidentEvent, target: str, message: RenderedMessage, placed: tuple[Placement, str]
    ) -> None:
        key = (event.incident.id, target)
        if message.kind == "fixed":  # the incident's last message to the group
            self._last.pop(key, None)
        else:
            self._last[key] = placed

    async def _constraint(self, incident_id: str, target: str) -> Constraint:
        """What the incident's earlier messages to ``target`` impose: from its last placement in
        this process (one ``_id`` read), else (after a restart) from all its records (a scan)."""
        last = self._last.get((incident_id, target))
        if last is not None:
            placement, ref = last
            record = await self._store.get(ref)
            final = record is not None and record.get("status") in FINAL_STATUSES
            if placement == "digest":
                return constraint_of([Earlier("digested", digest_pending=not final)])
            return constraint_of([Earlier(str(record.get("status")) if record is not None else "sent")])
        docs = await self._deliveries_col.find({"incident_id": incident_id, "target": target}).to_list()
        earlier: list[Earlier] = []
        for doc in docs:
            pending = False
            if doc.get("status") == "digested":
                digest = doc.get("digest")
                record = await self._store.get(digest) if isinstance(digest, str) else None
                pending = record is None or record.get("status") not in FINAL_STATUSES
            earlier.append(Earlier(str(doc.get("status")), pending))
        return constraint_of(earlier)

    async def _open_digest(self, window: Window) -> None:
        if window.digest_id in self._open:
            return
        with contextlib.suppress(DuplicateKeyError):  # opened before a restart: the same window
            await self._digests.insert_one(
                {
                    "_id": window.digest_id,
                    "target": window.target,
                    "window_start": window.start,
                    "window_end": window.end,
                    "digest_only": window.digest_only,
                    "continued": window.continued,
                    "status": "open",
                }
            )
        self._open[window.digest_id] = window

    # -- flushing -------------------------------------------------------------------------------

    def open_digests(self) -> list[Window]:
        """The windows with digest items not flushed yet, ending first first."""
        return sorted(self._open.values(), key=lambda w: (w.end, w.target))

    async def flush_due(self, now: datetime) -> list[Delivery]:
        """Record the digest of every window that has ended; the digest deliveries recorded."""
        recorded: list[Delivery] = []
        async with self._lock:
            for window in self.open_digests():
                if window.end > now:
                    continue
                delivery = await self._flush(window, now)
                del self._open[window.digest_id]
                if delivery is not None:
                    recorded.append(delivery)
        return recorded

    async def _flush(self, window: Window, now: datetime) -> Delivery | None:
        items = await self._deliveries_col.find({"digest": window.digest_id}).to_list()
        delivery: Delivery | None = None
        if items:
            message = render_digest(
                [entry_from_doc(item) for item in items],
                self._catalogue,
                window=window.length,
                digest_only=window.digest_only,
                max_listed=self.policy.max_listed,
            )
            cost = self._costs.cost_of(window.target) if self._costs is not None else None
            incidents = sorted({str(item["incident_id"]) for item in items})
            fields: dict[str, Any] = {"incidents": incidents, "items": len(items)}
            # The team and fallbacks of the group, as its latest item was routed.
            plan = TargetPlan.from_doc(max(items, key=lambda item: (item["created_at"], item["_id"])))
            if plan is not None:
                fields.update(plan.fields())
            if cost is not None:
                fields["cost"] = cost
            delivery, fresh = await self._store.record_message(
                window.digest_id,
                event_id=window.digest_id,
                incident_id=DIGEST_LANE,
                event_type="digest",
                target=window.target,
                message=message,
                at=window.start,
                now=now,
                **fields,
            )
            if fresh and cost is not None and self._costs is not None:
                self._costs.charged(cost)
            log.info(
                "digest_recorded",
                target=window.target,
                digest=window.digest_id,
                items=len(items),
                incidents=len(incidents),
                fresh=fresh,
            )
        await self._digests.update_one(
            {"_id": window.digest_id}, {"$set": {"status": "flushed", "flushed_at": now, "items": len(items)}}
        )
        return delivery
