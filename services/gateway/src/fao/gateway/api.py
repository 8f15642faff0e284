"""The REST API, ``/api/v1`` (its OpenAPI document: ``/api/v1/openapi.json``).

Bearer tokens (``fao tokens create``), the least role per route (``fao.gateway.guard``): viewer
reads, operator acts on incidents and maintenance windows, admin also sees people's contact
details. Lists are pages: ``limit`` (1-200) and the ``next_cursor`` of the previous page. Every
error is problem details (``fao.gateway.problems``). Every change is recorded in ``audit``
(source ``api``, actor the token's owner).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from fastapi import FastAPI, Query, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from fao.gateway import views
from fao.gateway.access import Principal
from fao.gateway.guard import ContextGetter, api_role, context_of
from fao.gateway.outcomes import CommandOutcome, api_command
from fao.gateway.problems import Problem, ProblemDetails, install
from fao.gateway.screenshots import screenshot_response
from fao.runtime import audit
from fao.runtime import maintenance_windows as windows
from fao.runtime.maintenance_windows import MaintenanceError, UnknownWindowError
from fao.runtime.thai import BANGKOK
from fao.schemas import CommandAction, Incident, MaintenanceWindow
from fao.schemas.events import IncidentKind, IncidentStatus

PREFIX: Final = "/api/v1"
# Written here, served by the reporter (fao.reporter.requests): a month's report asked for.
REPORT_REQUESTS: Final = "report_requests"
T = TypeVar("T")

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ProblemDetails, "content": {"application/problem+json": {}}, "description": title}
    for status, title in (
        (400, "Bad request (e.g. a cursor this server did not hand out)"),
        (401, "No valid token"),
        (403, "The token's role is too low"),
        (404, "Not found"),
        (422, "Invalid parameters or body"),
        (503, "MongoDB or NATS not answering"),
    )
}

Limit = Annotated[int, Query(ge=1, le=views.MAX_PAGE, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")]


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(frozen=True)
    items: list[T]
    next_cursor: str | None = Field(description="Give it as ``cursor`` for the next page; null on the last.")


class Me(BaseModel):
    name: str
    role: str


class TeamView(BaseModel):
    id: str
    name: str
    platform: bool
    line_groups: list[str]


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="", max_length=2000)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)


class CommandAnswer(BaseModel):
    command_id: str
    state: Literal["applied", "rejected", "queued"] = Field(
        description="applied: the correlator took it; rejected: it refused (reason); queued: no answer"
        " within the wait, the command stays in the stream"
    )
    reason: str = ""
    incident: Incident | None = None


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=64, description="Default: mw-<yyyymmdd>-<4 hex>.")
    reason: str = Field(min_length=1, max_length=500)
    systems: list[str] = Field(default_factory=list, max_length=200)
    teams: list[str] = Field(default_factory=list, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=200)
    start: datetime | None = Field(default=None, description="Default: now. ISO 8601 with an offset.")
    end: datetime | None = Field(default=None, description="Give end or duration.")
    duration: str | None = Field(default=None, max_length=20, description="e.g. 30m, 2h.")


class ReportRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(
        pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$",
        description="A month that is over, e.g. 2026-10 (Bangkok; years 2000-2099).",
    )


class ReportRequestView(BaseModel):
    id: str
    period: str
    status: Literal["queued", "done", "failed"] = Field(
        description="queued: waiting for a reporter (one runs with FAO_REPORTS_DIR); done: report_id"
        " is ready to download; failed: error says why"
    )
    requested_by: str
    at: datetime
    report_id: str | None = None
    error: str | None = None


class MaintenanceEnded(BaseModel):
    changed: bool
    message: str
    window: MaintenanceWindow


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise Problem(422, f"{name}: give a time with an offset, e.g. 2026-12-01T22:00+07:00")
    try:
        value.astimezone(UTC)  # stored and compared in UTC: 0001-01-01T00:00+07:00 has no UTC time
    except OverflowError:
        raise Problem(422, f"{name}: {value.isoformat()} is out of range") from None
    return value


def build_api(getter: ContextGetter) -> FastAPI:
    api = FastAPI(
        title="Fao API",
        version="1",
        description="Fao's REST API: systems, monitors, incidents (and commands on them), maintenance"
        " windows, reports, the LINE quota and the outbox. Bearer tokens: `fao tokens create`.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    install(api)
    viewer = api_role(getter, "viewer")
    operator = api_role(getter, "operator")
    admin = api_role(getter, "admin")

    @api.get("/me", summary="Who the token belongs to")
    async def me(principal: Principal = viewer) -> Me:
        return Me(name=principal.name, role=principal.role)

    # --- systems and monitors ---------------------------------------------------------------------

    @api.get("/systems", summary="Systems and their state now")
    async def list_systems(
        limit: Limit = 50, cursor: Cursor = None, principal: Principal = viewer
    ) -> Page[views.SystemView]:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        items, next_cursor = _page([s.id for s in inv.systems], cursor, limit)
        by_id = {s.id: s for s in inv.systems}
        now = ctx.clock()
        return Page(items=[inv.system_view(by_id[i], now) for i in items], next_cursor=next_cursor)

    @api.get("/systems/{system_id}", summary="One system and its state now")
    async def get_system(system_id: str, principal: Principal = viewer) -> views.SystemView:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        for system in inv.systems:
            if system.id == system_id:
                return inv.system_view(system, ctx.clock())
        raise Problem(404, f"no system {system_id!r}")

    @api.get("/monitors", summary="Monitors with their state, last outcomes and recent results")
    async def list_monitors(
        system: Annotated[str | None, Query(max_length=64)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        principal: Principal = viewer,
    ) -> Page[views.MonitorView]:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        monitors = [m for m in inv.monitors if system is None or m.system == system]
        items, next_cursor = _page([m.id for m in monitors], cursor, limit)
        by_id = {m.id: m for m in monitors}
        return Page(
            items=[views.monitor_view(by_id[i], inv.states.get(i), ctx.results) for i in items],
            next_cursor=next_cursor,
        )

    @api.get("/monitors/{monitor_id}", summary="One monitor with its state and recent results")
    async def get_monitor(monitor_id: str, principal: Principal = viewer) -> views.MonitorView:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        for monitor in inv.monitors:
            if monitor.id == monitor_id:
                return views.monitor_view(monitor, inv.states.get(monitor_id), ctx.results)
        raise Problem(404, f"no monitor {monitor_id!r}")

    @api.get("/teams", summary="Teams (their e-mail and webhook targets are not shown)")
    async def list_teams(principal: Principal = viewer) -> list[TeamView]:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        return [
            TeamView(id=t.id, name=t.name, platform=t.platform, line_groups=list(t.line_groups))
            for t in inv.teams
        ]

    @api.get("/people", summary="People (contact details for admins only)")
    async def list_people(principal: Principal = viewer) -> list[views.PersonView]:
        ctx = context_of(getter)
        return await views.people(ctx.db, contacts=principal.may("admin"))

    @api.get("/people/contacts", summary="People with their contact details (admin)")
    async def list_contacts(principal: Principal = admin) -> list[views.PersonView]:
        ctx = context_of(getter)
        return await views.people(ctx.db, contacts=True)

    # --- incidents --------------------------------------------------------------------------------

    @api.get("/incidents", summary="Incidents, newest first")
    async def list_incidents(
        system: Annotated[str | None, Query(max_length=64)] = None,
        team: Annotated[str | None, Query(max_length=64)] = None,
        status: IncidentStatus | None = None,
        kind: IncidentKind | None = None,
        since: Annotated[
            datetime | None, Query(description="Started at or after (ISO 8601, with offset).")
        ] = None,
        until: Annotated[datetime | None, Query(description="Started before.")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        principal: Principal = viewer,
    ) -> Page[Incident]:
        ctx = context_of(getter)
        flt = views.IncidentFilter(
            system=system, team=team, status=status, kind=kind,
            since=_aware(since, "since"), until=_aware(until, "until"),
        )  # fmt: skip
        try:
            items, next_cursor = await views.list_incidents(ctx.db, flt, cursor, limit)
        except views.BadCursorError as exc:
            raise Problem(400, str(exc)) from None
        return Page(items=items, next_cursor=next_cursor)

    @api.get("/incidents/{incident_id}", summary="One incident with its timeline and delivery log")
    async def get_incident(incident_id: str, principal: Principal = viewer) -> views.IncidentDetail:
        ctx = context_of(getter)
        detail = await views.incident_detail(ctx.db, incident_id)
        if detail is None:
            raise Problem(404, f"no incident {incident_id!r}")
        return detail

    @api.get(
        "/incidents/{incident_id}/screenshots/{number}",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image"},
            503: ERRORS[503],
        },
        summary="A screenshot of a failing browser check the incident names (its `screenshots[number]`)",
    )
    async def incident_screenshot(incident_id: str, number: str, principal: Principal = viewer) -> Response:
        ctx = context_of(getter)
        return await screenshot_response(ctx.db, ctx.read_screenshot, incident_id, number)

    async def _command(
        action: CommandAction, incident_id: str, text: str, principal: Principal
    ) -> JSONResponse:
        ctx = context_of(getter)
        incident = await views.get_incident(ctx.db, incident_id)
        if incident is None:
            raise Problem(404, f"no incident {incident_id!r}")
        now = ctx.clock()
        command = api_command(action, principal.name, incident_id, text, now)
        outcome = await ctx.outcomes.send(command, ctx.settings.web_command_wait)
        await record_command(ctx.db, command.action, incident_id, principal.name, "api", now, outcome, text)
        after = await views.get_incident(ctx.db, incident_id)
        answer = CommandAnswer(
            command_id=str(command.command_id), state=outcome.state, reason=outcome.reason, incident=after
        )
        status = {"applied": 200, "rejected": 409, "queued": 202}[outcome.state]
        return JSONResponse(answer.model_dump(mode="json"), status_code=status)

    command_responses: dict[int | str, dict[str, Any]] = {
        202: {"model": CommandAnswer, "description": "Sent; the correlator has not answered yet"},
        409: {"model": CommandAnswer, "description": "The correlator refused it (reason)"},
    }

    @api.post(
        "/incidents/{incident_id}/acknowledge", response_model=CommandAnswer, responses=command_responses,
        summary="Acknowledge (operator)",
    )  # fmt: skip
    async def acknowledge(
        incident_id: str, body: CommandBody | None = None, principal: Principal = operator
    ) -> JSONResponse:
        return await _command("ack", incident_id, body.text if body else "", principal)

    @api.post(
        "/incidents/{incident_id}/resolve", response_model=CommandAnswer, responses=command_responses,
        summary="Resolve (operator)",
    )  # fmt: skip
    async def resolve(
        incident_id: str, body: CommandBody | None = None, principal: Principal = operator
    ) -> JSONResponse:
        return await _command("resolve", incident_id, body.text if body else "", principal)

    @api.post(
        "/incidents/{incident_id}/notes", response_model=CommandAnswer, responses=command_responses,
        summary="Add a note (operator)",
    )  # fmt: skip
    async def note(incident_id: str, body: NoteBody, principal: Principal = operator) -> JSONResponse:
        return await _command("note", incident_id, body.text, principal)

    # --- maintenance ------------------------------------------------------------------------------

    @api.get("/maintenance", summary="Maintenance windows: active, upcoming, then over")
    async def list_maintenance(
        limit: Limit = 50, cursor: Cursor = None, principal: Principal = viewer
    ) -> Page[views.MaintenanceView]:
        ctx = context_of(getter)
        items = await views.maintenance_views(ctx.db, ctx.clock())
        ids, next_cursor = _page([v.window.id for v in items], cursor, limit, keep_order=True)
        wanted = set(ids)
        return Page(items=[v for v in items if v.window.id in wanted], next_cursor=next_cursor)

    @api.post("/maintenance", status_code=201, summary="Add a one-off maintenance window (operator)")
    async def add_maintenance(body: MaintenanceBody, principal: Principal = operator) -> MaintenanceWindow:
        ctx = context_of(getter)
        now = ctx.clock()
        try:
            if body.end is not None and body.duration is not None:
                raise MaintenanceError("give end or duration, not both")
            if body.end is None and body.duration is None:
                raise MaintenanceError("give end or duration")
            start = windows.within_reach(_aware(body.start, "start") or now, now, "start")
            end = windows.within_reach(
                _aware(body.end, "end") or start + windows.parse_positive_duration(body.duration or ""),
                now,
                "end",
            )
            if end <= start:
                raise MaintenanceError("end must be after start")
            if end <= now:
                raise MaintenanceError("the window would already be over")
            window = windows.build_window(
                window_id=body.id, reason=body.reason, systems=body.systems, teams=body.teams,
                tags=body.tags, start=start, end=end, created_by=principal.name,
            )  # fmt: skip
            return await windows.add(
                ctx.db, ctx.publish_maintenance, window, generated_id=body.id is None,
                actor=principal.name, source="api", now=now,
            )  # fmt: skip
        except windows.UnavailableError as exc:
            raise Problem(503, str(exc)) from None
        except MaintenanceError as exc:
            raise Problem(422, str(exc)) from None

    @api.post(
        "/maintenance/{window_id}/end", summary="End a window now (or cancel one not started) (operator)"
    )
    async def end_maintenance(window_id: str, principal: Principal = operator) -> MaintenanceEnded:
        ctx = context_of(getter)
        try:
            ended = await windows.end(
                ctx.db,
                ctx.publish_maintenance,
                window_id,
                actor=principal.name,
                source="api",
                now=ctx.clock(),
            )
        except UnknownWindowError as exc:
            raise Problem(404, str(exc)) from None
        except windows.UnavailableError as exc:
            raise Problem(503, str(exc)) from None
        except MaintenanceError as exc:
            raise Problem(422, str(exc)) from None
        return MaintenanceEnded(changed=ended.changed, message=ended.message, window=ended.window)

    # --- reports, LINE quota, outbox --------------------------------------------------------------

    @api.get("/reports", summary="Reports the reporter produced")
    async def list_reports(
        limit: Limit = 50, cursor: Cursor = None, principal: Principal = viewer
    ) -> Page[views.ReportView]:
        ctx = context_of(getter)
        items = await views.reports(ctx.db)
        ids, next_cursor = _page([r.id for r in items], cursor, limit, keep_order=True)
        wanted = set(ids)
        return Page(items=[r for r in items if r.id in wanted], next_cursor=next_cursor)

    @api.post("/reports", status_code=202, summary="Ask for a month's report (operator)")
    async def request_report(body: ReportRequestBody, principal: Principal = operator) -> ReportRequestView:
        ctx = context_of(getter)
        now = ctx.clock()
        year, month = (int(part) for part in body.period.split("-"))
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=BANGKOK)
        if end > now:
            raise Problem(
                409,
                f"{body.period} is not over yet: its report is made after it ends (a preview: fao report)",
            )
        request = ReportRequestView(
            id=str(uuid.uuid4()), period=body.period, status="queued", requested_by=principal.name, at=now
        )
        await ctx.db[REPORT_REQUESTS].insert_one(
            {"_id": request.id, **request.model_dump(exclude={"id", "report_id", "error"})}
        )
        await audit.record(
            ctx.db,
            audit.entry(
                at=now, actor=principal.name, source="api", action="report.request",
                request_id=request.id, period=body.period,
            ),
        )  # fmt: skip
        return request

    @api.get("/reports/requests/{request_id}", summary="A report request's state")
    async def report_request(request_id: str, principal: Principal = viewer) -> ReportRequestView:
        ctx = context_of(getter)
        doc = await ctx.db[REPORT_REQUESTS].find_one({"_id": request_id})
        if doc is None:
            raise Problem(404, f"no report request {request_id!r}")
        return ReportRequestView.model_validate(
            {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}
        )

    @api.get(
        "/reports/{report_id}/files/{file_format}",
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
        summary="Download one file of a report",
    )
    async def download_report(
        report_id: str, file_format: str, principal: Principal = viewer
    ) -> FileResponse:
        ctx = context_of(getter)
        return await report_file(ctx.db, ctx.settings.reports_dir, report_id, file_format)

    @api.get("/line/quota", summary="The LINE message quota as the notifier last saw it")
    async def line_quota(principal: Principal = viewer) -> views.QuotaView:
        return await views.quota(context_of(getter).db)

    @api.get("/outbox", summary="Messages kept in the outbox (no LINE credentials), newest first")
    async def outbox(
        limit: Limit = 50, cursor: Cursor = None, principal: Principal = viewer
    ) -> Page[views.OutboxItem]:
        ctx = context_of(getter)
        try:
            items, next_cursor = await views.outbox_page(ctx.db, cursor, limit)
        except views.BadCursorError as exc:
            raise Problem(400, str(exc)) from None
        return Page(items=items, next_cursor=next_cursor)

    return api


def _page(
    ids: list[str], cursor: str | None, limit: int, keep_order: bool = False
) -> tuple[list[str], str | None]:
    """A page of ``ids`` (sorted, or in the given order) after the id in ``cursor``."""
    ordered = ids if keep_order else sorted(ids)
    start = 0
    if cursor:
        try:
            after = views.decode_cursor(cursor, 1)[0]
        except views.BadCursorError as exc:
            raise Problem(400, str(exc)) from None
        if after not in ordered:
            raise Problem(400, "the cursor is not one this server handed out (or its item is gone)")
        start = ordered.index(after) + 1
    page = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return page, (views.encode_cursor(page[-1]) if more and page else None)


MEDIA_TYPES: Final = {
    "pdf": "application/pdf",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _inside(reports_dir: Path, stored: str) -> Path | None:
    """The stored path as a file inside ``reports_dir``; None when it is elsewhere or missing."""
    root = reports_dir.resolve()
    path = Path(stored)
    path = (path if path.is_absolute() else root / path).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


async def report_file(db: Any, reports_dir: Path | None, report_id: str, file_format: str) -> FileResponse:
    """One file of a stored report, served only from inside ``reports_dir``."""
    doc = await db[views.REPORTS].find_one({"_id": report_id})
    if doc is None:
        raise Problem(404, f"no report {report_id!r}")
    entry = next(
        (f for f in doc.get("files") or [] if isinstance(f, dict) and f.get("format") == file_format), None
    )
    if entry is None or not entry.get("path"):
        raise Problem(404, f"report {report_id!r} has no {file_format!r} file")
    if reports_dir is None:
        raise Problem(404, "report files are not served here: set FAO_REPORTS_DIR on the gateway")
    path = await asyncio.to_thread(_inside, reports_dir, str(entry["path"]))
    if path is None:
        raise Problem(404, f"the {file_format} file of report {report_id!r} is not in the reports folder")
    return FileResponse(
        path, media_type=MEDIA_TYPES.get(file_format, "application/octet-stream"), filename=path.name
    )


async def record_command(
    db: Any,
    action: CommandAction,
    incident_id: str,
    actor: str,
    source: audit.AuditSource,
    now: datetime,
    outcome: CommandOutcome,
    text: str,
) -> None:
    """The audit entry of a command sent from the web face (whatever the correlator answered)."""
    await audit.record(
        db,
        audit.entry(
            at=now, actor=actor, source=source, action=f"incident.{action}", incident_id=incident_id,
            command_id=str(outcome.command_id), outcome=outcome.state, reason=outcome.reason, text=text,
        ),
    )  # fmt: skip
