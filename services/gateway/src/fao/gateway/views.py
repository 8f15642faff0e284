"""What the API, the dashboard and the status page show, read from MongoDB (and the results feed,
and the monitor states followed from the correlator's state bucket).

Read only: ``systems``/``monitors``/``teams``/``people``/``maintenance`` (``fao apply``, the CLI
and the gateway), ``incidents``/``incident_timeline`` (the correlator),
``deliveries``/``outbox``/``line_state`` (the notifier), ``reports`` (the reporter). Documents
written by others are read tolerantly: one that does not validate is left out with a log line,
never a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway.results_feed import RecentResults
from fao.runtime.inventory import (
    MAINTENANCE,
    MONITORS,
    PEOPLE,
    SYSTEMS,
    TEAMS,
    from_doc,
    maintenance_from_doc,
)
from fao.runtime.store import Document
from fao.schemas import Incident, MaintenanceWindow, Monitor, Person, System, Team
from fao.schemas.events import IncidentKind, IncidentStatus
from fao.schemas.maintenance import next_occurrence, occurrence_at

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

INCIDENTS: Final = "incidents"
TIMELINE: Final = "incident_timeline"
DELIVERIES: Final = "deliveries"
OUTBOX: Final = "outbox"
LINE_STATE: Final = "line_state"
REPORTS: Final = "reports"
MAX_PAGE: Final = 200

SystemState = Literal["up", "down", "degraded", "maintenance", "unknown"]


class BadCursorError(ValueError):
    """A cursor this server did not hand out."""


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


def _models(kind: type[M], docs: Iterable[Document]) -> list[M]:
    out: list[M] = []
    for doc in docs:
        try:
            out.append(from_doc(kind, doc))
        except ValidationError as exc:
            log.warning("document_invalid", kind=kind.__name__, id=doc.get("_id"), error=str(exc)[:300])
    return out


def incident_from_doc(doc: Document) -> Incident | None:
    try:
        return Incident.model_validate({k: v for k, v in doc.items() if k != "_id"})
    except ValidationError as exc:
        log.warning("document_invalid", kind="Incident", id=doc.get("_id"), error=str(exc)[:300])
        return None


# --- cursors ----------------------------------------------------------------------------------------


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursorError("the cursor is not one this server handed out") from None
    values = text.split("\x1f")
    if len(values) != parts:
        raise BadCursorError("the cursor is not one this server handed out")
    return values


# --- systems ----------------------------------------------------------------------------------------


class SystemView(View):
    id: str
    name: str
    name_th: str | None
    team: str
    severity: str
    depends_on: list[str]
    public: bool
    state: SystemState
    open_incident_id: str | None = None
    monitors: int = 0


def system_state(
    system: System, incidents: list[Incident], monitor_states: list[str], in_maintenance: bool
) -> tuple[SystemState, str | None]:
    """One system's state now: its worst open incident first, then maintenance, then its monitors."""
    mine = [i for i in incidents if i.system_id == system.id and i.status != "resolved"]
    rank = {"down": 0, "degraded": 1, "maintenance": 2}
    best: tuple[int, SystemState, str] | None = None
    for incident in mine:
        state: SystemState
        if incident.muted == "maintenance":
            state = "maintenance"
        elif incident.kind in ("zone", "flapping", "prober_silent") or incident.severity == "minor":
            state = "degraded"
        else:
            state = "down"
        candidate = (rank[state], state, incident.id)
        if best is None or candidate < best:
            best = candidate
    if best is not None:
        return best[1], best[2]
    if in_maintenance:
        return "maintenance", None
    if "down" in monitor_states:
        return "down", None
    if not monitor_states or all(s == "unknown" for s in monitor_states):
        return "unknown", None
    return "up", None


def window_applies(window: MaintenanceWindow, system: System, monitors: list[Monitor]) -> bool:
    if system.id in window.systems or system.team in window.teams:
        return True
    return any(tag in window.tags for m in monitors for tag in m.tags)


class Inventory:
    """The inventory and current states, read once per request."""

    def __init__(
        self,
        systems: list[System],
        monitors: list[Monitor],
        teams: list[Team],
        states: dict[str, Document],
        open_incidents: list[Incident],
        windows: list[MaintenanceWindow],
    ) -> None:
        self.systems = sorted(systems, key=lambda s: s.id)
        self.monitors = sorted(monitors, key=lambda m: m.id)
        self.teams = sorted(teams, key=lambda t: t.id)
        self.states = states
        self.open_incidents = open_incidents
        self.windows = windows

    def monitors_of(self, system_id: str) -> list[Monitor]:
        return [m for m in self.monitors if m.system == system_id]

    def system_view(self, system: System, now: datetime) -> SystemView:
        monitors = self.monitors_of(system.id)
        statuses = [str(self.states.get(m.id, {}).get("status", "unknown")) for m in monitors if m.enabled]
        maintenance = any(
            occurrence_at(w, now) is not None and window_applies(w, system, monitors) for w in self.windows
        )
        state, incident_id = system_state(system, self.open_incidents, statuses, maintenance)
        return SystemView(
            id=system.id, name=system.name, name_th=system.name_th, team=system.team,
            severity=system.severity, depends_on=list(system.depends_on), public=system.public,
            state=state, open_incident_id=incident_id, monitors=len(monitors),
        )  # fmt: skip


async def load_inventory(db: AsyncDatabase[Document], states: Mapping[str, Document]) -> Inventory:
    """The inventory and what is open now, with the monitor states (followed from the correlator's
    state bucket: ``fao.runtime.states.StateCatalog``)."""
    systems = _models(System, await db[SYSTEMS].find({}).to_list())
    monitors = _models(Monitor, await db[MONITORS].find({}).to_list())
    teams = _models(Team, await db[TEAMS].find({}).to_list())
    docs = await db[INCIDENTS].find({"status": {"$ne": "resolved"}}).to_list()
    incidents = [i for i in (incident_from_doc(d) for d in docs) if i is not None]
    windows: list[MaintenanceWindow] = []
    for doc in await db[MAINTENANCE].find({}).to_list():
        try:
            windows.append(maintenance_from_doc(doc)[0])
        except ValueError:
            continue
    return Inventory(systems, monitors, teams, dict(states), incidents, windows)


# --- monitors ---------------------------------------------------------------------------------------


class ResultView(View):
    at: datetime
    zone: str
    ok: bool
    latency_ms: float
    error_kind: str
    detail: str
    http_status: int | None = None
    observations: dict[str, Any] | None = None


class SampleView(View):
    zone: str
    at: datetime
    ok: bool
    detail: str = ""


class MonitorView(View):
    id: str
    system: str
    name: str | None
    type: str
    check: dict[str, Any]
    interval: float
    zones: list[str]
    enabled: bool
    status: str = "unknown"
    zone_status: dict[str, str] = Field(default_factory=dict)
    last_at: datetime | None = None
    cause: str = ""
    samples: list[SampleView] = Field(default_factory=list)
    recent_results: list[ResultView] = Field(default_factory=list)


def monitor_view(monitor: Monitor, state: Document | None, feed: RecentResults | None) -> MonitorView:
    state = state or {}
    zones = state.get("zones") if isinstance(state.get("zones"), dict) else {}
    samples: list[SampleView] = []
    zone_status: dict[str, str] = {}
    last: list[datetime] = []
    for zone, data in (zones or {}).items():
        if not isinstance(data, dict):
            continue
        zone_status[str(zone)] = str(data.get("status", "unknown"))
        if isinstance(data.get("last_at"), datetime):
            last.append(data["last_at"])
        for sample in data.get("window") or []:
            if isinstance(sample, dict) and isinstance(sample.get("at"), datetime):
                samples.append(
                    SampleView(zone=str(zone), at=sample["at"], ok=bool(sample.get("ok")),
                               detail=str(sample.get("detail") or ""))
                )  # fmt: skip
    recent = [
        ResultView(
            at=r.started_at,
            zone=r.zone,
            ok=r.ok,
            latency_ms=r.latency_ms,
            error_kind=str(r.error_kind),
            detail=r.detail,
            http_status=r.http_status,
            observations=r.observations.model_dump(mode="json", exclude_none=True)
            if r.observations
            else None,
        )
        for r in (feed.of(monitor.id) if feed is not None else [])
    ]
    if recent:
        last.append(recent[-1].at)
    return MonitorView(
        id=monitor.id, system=monitor.system, name=monitor.name, type=monitor.check.type,
        check=monitor.check.model_dump(mode="json"), interval=monitor.interval, zones=list(monitor.zones),
        enabled=monitor.enabled, status=str(state.get("status", "unknown")), zone_status=zone_status,
        last_at=max(last) if last else None, cause=str(state.get("cause") or ""),
        samples=sorted(samples, key=lambda s: s.at), recent_results=recent,
    )  # fmt: skip


# --- incidents --------------------------------------------------------------------------------------


class IncidentFilter(View):
    system: str | None = None
    team: str | None = None
    status: IncidentStatus | None = None
    kind: IncidentKind | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_incidents(
    db: AsyncDatabase[Document], flt: IncidentFilter, cursor: str | None, limit: int
) -> tuple[list[Incident], str | None]:
    """Newest first (``started_at``, then id), a page after ``cursor``."""
    query: Document = {}
    if flt.system:
        query["system_id"] = flt.system
    if flt.status:
        query["status"] = flt.status
    if flt.kind:
        query["kind"] = flt.kind
    if flt.team:
        team_systems = [d["_id"] for d in await db[SYSTEMS].find({"team": flt.team}, {"_id": 1}).to_list()]
        query["system_id"] = {"$in": [s for s in team_systems if not flt.system or s == flt.system]}
    started: Document = {}
    if flt.since:
        started["$gte"] = flt.since
    if flt.until:
        started["$lt"] = flt.until
    if started:
        query["started_at"] = started
    if cursor:
        at_text, after_id = decode_cursor(cursor, 2)
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise BadCursorError("the cursor is not one this server handed out") from None
        query = {
            "$and": [
                query,
                {"$or": [{"started_at": {"$lt": at}}, {"started_at": at, "_id": {"$lt": after_id}}]},
            ]
        }
    docs = await db[INCIDENTS].find(query).sort([("started_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
    incidents = [i for i in (incident_from_doc(d) for d in docs[:limit]) if i is not None]
    more = len(docs) > limit
    last = docs[limit - 1] if more else None
    next_cursor = (
        encode_cursor(last["started_at"].isoformat(), str(last["_id"])) if last is not None else None
    )
    return incidents, next_cursor


class TimelineEntry(View):
    id: str
    incident_id: str
    system_id: str
    at: datetime
    type: str
    actor: str
    text: str = ""


class DeliveryView(View):
    id: str
    at: datetime | None = None
    kind: str | None = None
    channel: str | None = None
    target: str | None = None
    status: str | None = None
    attempts: int = 0
    error: str | None = None
    cost: int | None = None
    fallback_of: str | None = None


class ScreenshotLink(View):
    """A screenshot the incident names (a failing browser check's) and where the API serves it."""

    name: str
    url: str


class IncidentDetail(View):
    incident: Incident
    timeline: list[TimelineEntry]
    deliveries: list[DeliveryView]
    screenshots: list[ScreenshotLink] = Field(default_factory=list)


def screenshot_links(incident: Incident, prefix: str = "/api/v1") -> list[ScreenshotLink]:
    base = f"{prefix}/incidents/{quote(incident.id, safe='')}/screenshots"
    return [ScreenshotLink(name=name, url=f"{base}/{i}") for i, name in enumerate(incident.screenshots)]


async def get_incident(db: AsyncDatabase[Document], incident_id: str) -> Incident | None:
    doc = await db[INCIDENTS].find_one({"_id": incident_id})
    return incident_from_doc(doc) if doc is not None else None


async def timeline(db: AsyncDatabase[Document], incident_id: str) -> list[TimelineEntry]:
    query = {"$or": [{"incident_id": incident_id}, {"parent_incident_id": incident_id}]}
    entries: list[TimelineEntry] = []
    for doc in await db[TIMELINE].find(query).sort("at", 1).to_list():
        if not isinstance(doc.get("at"), datetime):
            continue
        entries.append(
            TimelineEntry(
                id=str(doc["_id"]),
                incident_id=str(doc.get("incident_id", "")),
                system_id=str(doc.get("system_id", "")),
                at=doc["at"],
                type=str(doc.get("type", "?")),
                actor=str(doc.get("actor") or "fao"),
                text=str(doc.get("text") or ""),
            )
        )
    return entries


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def deliveries(db: AsyncDatabase[Document], incident_id: str) -> list[DeliveryView]:
    out: list[DeliveryView] = []
    for doc in await db[DELIVERIES].find({"incident_id": incident_id}).to_list():
        at = doc.get("at") or doc.get("created_at")
        error = doc.get("error") or doc.get("last_error")
        out.append(
            DeliveryView(
                id=str(doc["_id"]),
                at=at if isinstance(at, datetime) else None,
                kind=str(doc["kind"]) if doc.get("kind") else None,
                channel=str(doc["channel"]) if doc.get("channel") else None,
                target=str(doc["target"]) if doc.get("target") else None,
                status=str(doc["status"]) if doc.get("status") else None,
                attempts=_int(doc.get("attempts")) or 0,
                error=str(error) if error else None,
                cost=_int(doc.get("cost")),
                fallback_of=str(doc["fallback_of"]) if doc.get("fallback_of") else None,
            )
        )
    return sorted(out, key=lambda d: (d.at is None, d.at or datetime.min, d.id))


async def incident_detail(db: AsyncDatabase[Document], incident_id: str) -> IncidentDetail | None:
    incident = await get_incident(db, incident_id)
    if incident is None:
        return None
    return IncidentDetail(
        incident=incident,
        timeline=await timeline(db, incident_id),
        deliveries=await deliveries(db, incident_id),
        screenshots=screenshot_links(incident),
    )


# --- maintenance ------------------------------------------------------------------------------------

WindowStatus = Literal["active", "upcoming", "over"]


class MaintenanceView(View):
    window: MaintenanceWindow
    source: str
    status: WindowStatus
    next_start: datetime | None = None
    next_end: datetime | None = None


def maintenance_view(doc: Document, now: datetime) -> MaintenanceView | None:
    try:
        window, source = maintenance_from_doc(doc)
    except ValueError:
        return None
    span = occurrence_at(window, now)
    status: WindowStatus = "active"
    if span is None:
        span = next_occurrence(window, now)
        status = "upcoming" if span is not None else "over"
    return MaintenanceView(
        window=window, source=source, status=status,
        next_start=span.start if span else None, next_end=span.end if span else None,
    )  # fmt: skip


async def maintenance_views(db: AsyncDatabase[Document], now: datetime) -> list[MaintenanceView]:
    views = [v for v in (maintenance_view(d, now) for d in await db[MAINTENANCE].find({}).to_list()) if v]
    rank = {"active": 0, "upcoming": 1, "over": 2}
    return sorted(views, key=lambda v: (rank[v.status], v.next_start or now, v.window.id))


# --- teams and people -------------------------------------------------------------------------------


class PersonView(View):
    """A person; ``line_user_id``, ``email`` and ``phone`` only for admins (None otherwise)."""

    id: str
    name: str
    role: str
    teams: list[str]
    line_user_id: str | None = None
    email: str | None = None
    phone: str | None = None


async def people(db: AsyncDatabase[Document], contacts: bool) -> list[PersonView]:
    out = []
    for person in _models(Person, await db[PEOPLE].find({}).to_list()):
        out.append(
            PersonView(
                id=person.id,
                name=person.name,
                role=person.role,
                teams=list(person.teams),
                line_user_id=person.line_user_id if contacts else None,
                email=str(person.email) if contacts and person.email else None,
                phone=person.phone if contacts else None,
            )
        )
    return sorted(out, key=lambda p: p.id)


# --- reports, LINE quota, outbox ---------------------------------------------------------------------


class ReportFileView(View):
    format: str
    size: int | None = None
    sha256: str | None = None


class ReportView(View):
    id: str
    period: str
    kind: str | None = None
    state: str | None = None
    generated_at: datetime | None = None
    language: str | None = None
    files: list[ReportFileView] = Field(default_factory=list)
    figures: dict[str, Any] | None = None


def report_view(doc: Document) -> ReportView:
    files = [
        ReportFileView(format=str(f["format"]), size=_int(f.get("size")), sha256=f.get("sha256"))
        for f in doc.get("files") or []
        if isinstance(f, dict) and f.get("format")
    ]
    generated = doc.get("generated_at")
    figures = doc.get("figures")
    return ReportView(
        id=str(doc["_id"]), period=str(doc.get("period", "")), kind=doc.get("kind"), state=doc.get("state"),
        generated_at=generated if isinstance(generated, datetime) else None, language=doc.get("language"),
        files=files, figures=figures if isinstance(figures, dict) else None,
    )  # fmt: skip


async def reports(db: AsyncDatabase[Document]) -> list[ReportView]:
    docs = await db[REPORTS].find({}).to_list()
    return sorted((report_view(d) for d in docs), key=lambda r: (r.period, r.id), reverse=True)


def plain(value: Any) -> Any:
    """A stored value as JSON-friendly data (datetimes as ISO 8601, ids as strings)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class QuotaView(View):
    """The LINE message quota as the notifier last saw it (``line_state`` ``quota``); every field
    the notifier stored is passed on."""

    model_config = ConfigDict(frozen=True, extra="allow")
    known: bool


async def quota(db: AsyncDatabase[Document]) -> QuotaView:
    doc = await db[LINE_STATE].find_one({"_id": "quota"})
    if doc is None:
        return QuotaView(known=False)
    return QuotaView(known=True, **{k: plain(v) for k, v in doc.items() if k not in ("_id", "known")})


class OutboxItem(View):
    id: str
    created_at: datetime | None = None
    kind: str | None = None
    target: str | None = None
    incident_id: str | None = None
    event_type: str | None = None
    text: str = ""


async def outbox_page(
    db: AsyncDatabase[Document], cursor: str | None, limit: int
) -> tuple[list[OutboxItem], str | None]:
    """Newest first."""
    query: Document = {}
    if cursor:
        at_text, after_id = decode_cursor(cursor, 2)
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise BadCursorError("the cursor is not one this server handed out") from None
        query = {"$or": [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": after_id}}]}
    docs = await db[OUTBOX].find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
    items = []
    for doc in docs[:limit]:
        created = doc.get("created_at")
        items.append(
            OutboxItem(
                id=str(doc["_id"]),
                created_at=created if isinstance(created, datetime) else None,
                kind=str(doc["kind"]) if doc.get("kind") else None,
                target=str(doc["target"]) if doc.get("target") else None,
                incident_id=str(doc["incident_id"]) if doc.get("incident_id") else None,
                event_type=str(doc["event_type"]) if doc.get("event_type") else None,
                text=str(doc.get("text") or ""),
            )
        )
    last = docs[limit - 1] if len(docs) > limit else None
    next_cursor = None
    if last is not None and isinstance(last.get("created_at"), datetime):
        next_cursor = encode_cursor(last["created_at"].isoformat(), str(last["_id"]))
    return items, next_cursor


# --- availability (status page) ----------------------------------------------------------------------


def daily_availability(
    incidents: list[Incident], days: int, now: datetime, day_start: datetime
) -> list[float | None]:
    """Per day (oldest first, the last is today up to ``now``) the share of time without an
    outage incident (maintenance parts and incidents muted by maintenance excluded; a dependant
    suppressed under its parent's incident counts, as in the monthly report). ``day_start`` is the
    start of today (Bangkok)."""
    out: list[float | None] = []
    for back in range(days - 1, -1, -1):
        start = day_start - timedelta(days=back)
        end = min(start + timedelta(days=1), now)
        length = (end - start).total_seconds()
        if length <= 0:
            out.append(None)
            continue
        down = 0.0
        for incident in incidents:
            if incident.kind not in ("outage", "manual") or incident.muted == "maintenance":
                continue
            a = max(incident.started_at, start)
            b = min(incident.resolved_at or now, end)
            if b > a:
                down += (b - a).total_seconds()
                for span in incident.maintenance:
                    ma, mb = max(span.start, a), min(span.end or now, b)
                    if mb > ma:
                        down -= (mb - ma).total_seconds()
        out.append(max(0.0, 1.0 - down / length))
    return out
