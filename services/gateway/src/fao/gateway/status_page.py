"""The public status page, ``/status`` (no sign-in): each public system's state now, its
availability per day for 90 days and its current and recent incidents — in plain words from the
catalogue only.

What it never shows: monitor ids, hosts, URLs, addresses, incident titles or causes (they hold
host names and error details), people, teams. Only ``System.public`` systems appear, under
``public_name_th`` (or their Thai name); an incident appears as its status and times, worded by
its kind. A dependant suppressed under another system's incident (everything behind a failed core
switch) is an outage of its own here, as in the monthly report: its users could not use it, whatever
the cause; the parts inside maintenance windows do not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from fao.gateway import views
from fao.gateway.guard import PUBLIC, ContextGetter, context_of
from fao.gateway.i18n import catalogue, format_duration, format_time, language_of
from fao.gateway.sessions import LANGUAGE_COOKIE
from fao.schemas import Incident
from fao.schemas.maintenance import BANGKOK

DAYS: Final = 90
RECENT: Final = 10
TEMPLATES: Final = Path(__file__).parent / "templates" / "web"


@dataclass(frozen=True)
class PublicIncident:
    system: str
    message_key: str
    started_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class PublicSystem:
    name: str
    state: views.SystemState
    days: list[float | None]
    availability: float | None


def public_message(incident: Incident) -> str:
    """The catalogue key that words an incident for the public."""
    if incident.status == "resolved":
        return "public_resolved"
    if incident.muted == "maintenance":
        return "public_maintenance"
    if incident.kind in ("flapping", "zone", "prober_silent"):
        return "public_partial"
    return "public_problem_ack" if incident.status == "acknowledged" else "public_problem"


def bar_class(share: float | None) -> str:
    if share is None:
        return "none"
    if share >= 0.999:
        return "ok"
    return "minor" if share >= 0.99 else "major"


async def status_values(ctx: Any, now: datetime) -> dict[str, Any]:
    inv = await views.load_inventory(ctx.db, ctx.states)
    public = [s for s in inv.systems if s.public]
    ids = [s.id for s in public]
    since = now - timedelta(days=DAYS)
    docs = await ctx.db[views.INCIDENTS].find({"system_id": {"$in": ids}}).to_list() if ids else []
    incidents = [i for i in (views.incident_from_doc(d) for d in docs) if i is not None]
    incidents = [i for i in incidents if (i.resolved_at or now) >= since]
    day_start = now.astimezone(BANGKOK).replace(hour=0, minute=0, second=0, microsecond=0)
    systems = []
    for system in public:
        mine = [i for i in incidents if i.system_id == system.id]
        days = views.daily_availability(mine, DAYS, now, day_start)
        known = [d for d in days if d is not None]
        systems.append(
            PublicSystem(
                name=system.public_display_name,
                state=inv.system_view(system, now).state,
                days=days,
                availability=sum(known) / len(known) if known else None,
            )
        )
    names = {s.id: s.public_display_name for s in public}
    shown = [i for i in incidents if i.kind != "prober_silent"]
    recent = sorted(shown, key=lambda i: i.started_at, reverse=True)[:RECENT]
    return {
        "systems": systems,
        "incidents": [
            PublicIncident(names[i.system_id], public_message(i), i.started_at, i.resolved_at) for i in recent
        ],
        "all_ok": all(s.state in ("up", "unknown") for s in systems),
        "now": now,
        "bar_class": bar_class,
    }


def build_status_page(getter: ContextGetter) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=str(TEMPLATES))

    @router.get("/status", dependencies=[PUBLIC])
    async def status(request: Request) -> HTMLResponse:
        ctx = context_of(getter)
        lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
        now = ctx.clock()
        values = await status_values(ctx, now)
        response = templates.TemplateResponse(
            request,
            "status.html",
            {
                "t": catalogue(lang),
                "lang": lang,
                "when": lambda value: format_time(value, lang),
                "took": lambda start, end=None: format_duration((end or now) - start, lang),
                **values,
            },
        )
        response.headers["Cache-Control"] = "public, max-age=30"
        return response

    return router
