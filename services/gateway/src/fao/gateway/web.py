"""The dashboard (jinja2 + htmx, no single-page app): sign-in, the live overview, incidents with
Acknowledge / Resolve / note, monitors with latency sparklines, the maintenance calendar, report
downloads and, in the embedded mode (``fao dev up``), the outbox.

Every page needs a session (``fao.gateway.sessions``) and states its role (``guard.user_role``);
every form carries the session's CSRF token, checked before the form is read further. The
overview and an incident's timeline refresh themselves (htmx polling of a fragment): no page
reloads. Thai by default; the ``fao_lang`` cookie switches to English. Actions are recorded in
``audit`` with the user as actor (source ``gateway``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from fao.gateway import views
from fao.gateway.access import authenticate
from fao.gateway.api import record_command, report_file
from fao.gateway.guard import PUBLIC, ContextGetter, SignedIn, WebContext, context_of, user_role
from fao.gateway.i18n import LANGUAGES, catalogue, format_day, format_duration, format_time, language_of
from fao.gateway.outcomes import api_command
from fao.gateway.problems import ErrorPage, Problem
from fao.gateway.screenshots import screenshot_response
from fao.gateway.sessions import LANGUAGE_COOKIE, PRESESSION_COOKIE, SESSION_COOKIE, new_nonce
from fao.gateway.sparkline import sparkline
from fao.runtime import maintenance_windows as windows
from fao.runtime.maintenance_windows import MaintenanceError, UnknownWindowError
from fao.schemas import CommandAction
from fao.schemas.maintenance import BANGKOK, next_occurrence, occurrence_at

TEMPLATES: Final = Path(__file__).parent / "templates" / "web"
MAX_FORM: Final = 64 * 1024
STATE_ORDER: Final = ("down", "degraded", "maintenance", "unknown", "up")
CALENDAR_DAYS: Final = 14
STATUSES: Final = ("open", "acknowledged", "resolved")
LANGUAGE_COOKIE_AGE: Final = 365 * 86400


def safe_next(target: str | None) -> str:
    """Only a local path: never another site (``//host``, ``https://…``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the dashboard's forms send)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise Problem(413, "the form is too large")
    if not body:
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Problem(415, "send the form as application/x-www-form-urlencoded")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "the form could not be read") from None
    return {key: values[-1] for key, values in fields.items()}


def check_csrf(ctx: WebContext, nonce: str | None, form: dict[str, str]) -> None:
    if not ctx.signer.csrf_valid(nonce, form.get("csrf")):
        raise Problem(403, "missing or wrong CSRF token: reload the page and try again", words="bad_csrf")


def error_page() -> ErrorPage:
    """An error as a page in the person's language, for a browser asking for HTML (not for htmx's
    fragment requests, nor for programs: they get problem details)."""
    templates = Jinja2Templates(directory=str(TEMPLATES))

    def page(request: Request, status: int, detail: str | None, words: str | None) -> Response | None:
        if "text/html" not in request.headers.get("accept", "") or request.headers.get("hx-request"):
            return None
        lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
        t = catalogue(lang)
        message = t[words] if words in t else t.get(f"error_{status}", t["error_other"])
        context = {
            "t": t, "lang": lang, "user": None, "csrf": "", "embedded": False, "quote": quote,
            "path": request.url.path if request.method == "GET" else "/",
            "status": status, "message": message, "detail": detail,
        }  # fmt: skip
        response = templates.TemplateResponse(request, "error.html", context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    return page


def build_dashboard(getter: ContextGetter) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    viewer = user_role(getter, "viewer")
    operator = user_role(getter, "operator")

    def render(
        request: Request, name: str, signed: SignedIn | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        ctx = context_of(getter)
        lang = language_of(request.cookies.get(LANGUAGE_COOKIE))
        words = catalogue(lang)
        context = {
            "t": words,
            "lang": lang,
            "user": signed.principal if signed else None,
            "csrf": ctx.signer.csrf_token(signed.session.nonce) if signed else values.pop("csrf", ""),
            "embedded": ctx.settings.web_embedded,
            "when": lambda value: format_time(value, lang),
            "day": lambda value: format_day(value, lang),
            "took": lambda start, end=None: format_duration((end or ctx.clock()) - start, lang),
            "path": request.url.path,
            "quote": quote,
            **values,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        ctx = context_of(getter)
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, secure=ctx.settings.web_cookie_secure, samesite="lax"
        )

    # --- sign-in ----------------------------------------------------------------------------------

    def login_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
        ctx = context_of(getter)
        nonce = request.cookies.get(PRESESSION_COOKIE) or new_nonce()
        response = render(
            request, "login.html", None, status, csrf=ctx.signer.csrf_token(nonce), error=error,
            next=safe_next(request.query_params.get("next")),
        )  # fmt: skip
        set_cookie(response, PRESESSION_COOKIE, nonce, None)
        return response

    @router.get("/login", dependencies=[PUBLIC])
    async def login_form(request: Request) -> HTMLResponse:
        return login_page(request)

    @router.post("/login", dependencies=[PUBLIC])
    async def login(request: Request) -> Response:
        ctx = context_of(getter)
        form = await read_form(request)
        check_csrf(ctx, request.cookies.get(PRESESSION_COOKIE), form)
        username = form.get("username", "").strip().lower()[:64]
        address = request.client.host if request.client else "unknown"
        now = ctx.clock()
        words = catalogue(language_of(request.cookies.get(LANGUAGE_COOKIE)))
        if not await ctx.limiter.take(username, address, now):
            return login_page(request, 429, words["login_limited"])
        account = await authenticate(ctx.db, username, form.get("password", ""))
        if account is None:
            return login_page(request, 401, words["bad_login"])
        await ctx.limiter.clear(username, address, now)
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        ttl = ctx.session_ttl
        set_cookie(
            response, SESSION_COOKIE, ctx.signer.session_cookie(account, now, ttl), int(ttl.total_seconds())
        )
        response.delete_cookie(PRESESSION_COOKIE)
        return response

    @router.post("/logout")
    async def logout(request: Request, signed: SignedIn = viewer) -> Response:
        ctx = context_of(getter)
        check_csrf(ctx, signed.session.nonce, await read_form(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @router.get("/lang/{code}", dependencies=[PUBLIC])
    async def switch_language(code: str, next: str | None = None) -> Response:
        if code not in LANGUAGES:
            raise Problem(404, f"no language {code!r} (th or en)")
        response = RedirectResponse(safe_next(next), status_code=303)
        set_cookie(response, LANGUAGE_COOKIE, code, LANGUAGE_COOKIE_AGE)
        return response

    # --- overview ---------------------------------------------------------------------------------

    async def overview_values(ctx: WebContext) -> dict[str, Any]:
        inv = await views.load_inventory(ctx.db, ctx.states)
        now = ctx.clock()
        systems = [inv.system_view(s, now) for s in inv.systems]
        groups = [(state, [s for s in systems if s.state == state]) for state in STATE_ORDER]
        names = {s.id: s.name_th or s.name for s in inv.systems}
        incidents = sorted(inv.open_incidents, key=lambda i: i.started_at, reverse=True)
        return {"groups": [g for g in groups if g[1]], "incidents": incidents, "names": names, "now": now}

    @router.get("/")
    async def overview(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        values = await overview_values(context_of(getter))
        return render(request, "overview.html", signed, **values)

    @router.get("/fragments/overview")
    async def overview_fragment(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        values = await overview_values(context_of(getter))
        return render(request, "_overview.html", signed, **values)

    # --- incidents --------------------------------------------------------------------------------

    @router.get("/incidents")
    async def incidents(
        request: Request, system: str | None = None, status: str | None = None, signed: SignedIn = viewer
    ) -> HTMLResponse:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        chosen_system = system if system in {s.id for s in inv.systems} else None
        chosen_status = status if status in STATUSES else None
        flt = views.IncidentFilter(system=chosen_system, status=chosen_status)
        items, _ = await views.list_incidents(ctx.db, flt, None, 100)
        names = {s.id: s.name_th or s.name for s in inv.systems}
        return render(
            request, "incidents.html", signed, incidents=items, names=names, systems=inv.systems,
            statuses=STATUSES, chosen_system=chosen_system, chosen_status=chosen_status,
        )  # fmt: skip

    async def incident_values(ctx: WebContext, incident_id: str) -> dict[str, Any]:
        detail = await views.incident_detail(ctx.db, incident_id)
        if detail is None:
            raise Problem(404, f"no incident {incident_id!r}")
        return {"detail": detail, "incident": detail.incident}

    @router.get("/incidents/{incident_id}")
    async def incident(request: Request, incident_id: str, signed: SignedIn = viewer) -> HTMLResponse:
        values = await incident_values(context_of(getter), incident_id)
        done = request.query_params.get("done")
        return render(
            request,
            "incident.html",
            signed,
            done=done if done in ("applied", "rejected", "queued") else None,
            **values,
        )

    @router.get("/incidents/{incident_id}/screenshots/{number}")
    async def incident_screenshot(incident_id: str, number: str, signed: SignedIn = viewer) -> Response:
        ctx = context_of(getter)
        return await screenshot_response(ctx.db, ctx.read_screenshot, incident_id, number)

    @router.get("/fragments/incidents/{incident_id}")
    async def incident_fragment(
        request: Request, incident_id: str, signed: SignedIn = viewer
    ) -> HTMLResponse:
        values = await incident_values(context_of(getter), incident_id)
        return render(request, "_incident.html", signed, **values)

    async def command(
        request: Request, incident_id: str, signed: SignedIn, action: CommandAction
    ) -> Response:
        ctx = context_of(getter)
        form = await read_form(request)
        check_csrf(ctx, signed.session.nonce, form)
        text = form.get("text", "").strip()[:2000]
        if action == "note" and not text:
            raise Problem(422, "a note needs text")
        if await views.get_incident(ctx.db, incident_id) is None:
            raise Problem(404, f"no incident {incident_id!r}")
        now = ctx.clock()
        cmd = api_command(action, signed.principal.name, incident_id, text, now)
        outcome = await ctx.outcomes.send(cmd, ctx.settings.web_command_wait)
        await record_command(
            ctx.db, action, incident_id, signed.principal.name, "gateway", now, outcome, text
        )
        return RedirectResponse(f"/incidents/{quote(incident_id)}?done={outcome.state}", status_code=303)

    @router.post("/incidents/{incident_id}/ack")
    async def acknowledge(request: Request, incident_id: str, signed: SignedIn = operator) -> Response:
        return await command(request, incident_id, signed, "ack")

    @router.post("/incidents/{incident_id}/resolve")
    async def resolve(request: Request, incident_id: str, signed: SignedIn = operator) -> Response:
        return await command(request, incident_id, signed, "resolve")

    @router.post("/incidents/{incident_id}/note")
    async def note(request: Request, incident_id: str, signed: SignedIn = operator) -> Response:
        return await command(request, incident_id, signed, "note")

    # --- monitors ---------------------------------------------------------------------------------

    @router.get("/monitors")
    async def monitors(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        ctx = context_of(getter)
        inv = await views.load_inventory(ctx.db, ctx.states)
        rows = []
        for monitor in inv.monitors:
            view = views.monitor_view(monitor, inv.states.get(monitor.id), ctx.results)
            points = [(r.latency_ms, r.ok) for r in view.recent_results]
            rows.append((view, sparkline(points)))
        return render(request, "monitors.html", signed, rows=rows)

    # --- maintenance ------------------------------------------------------------------------------

    async def maintenance_page(
        request: Request,
        signed: SignedIn,
        status: int = 200,
        error: str | None = None,
        added: str | None = None,
    ) -> HTMLResponse:
        ctx = context_of(getter)
        now = ctx.clock()
        items = await views.maintenance_views(ctx.db, now)
        today = now.astimezone(BANGKOK).replace(hour=0, minute=0, second=0, microsecond=0)
        days = []
        for n in range(CALENDAR_DAYS):
            start = today + timedelta(days=n)
            end = start + timedelta(days=1)
            here = [v for v in items if _overlaps(v, start, end)]
            days.append((start, here))
        inv = await views.load_inventory(ctx.db, ctx.states)
        return render(
            request, "maintenance.html", signed, status, windows=items, days=days, error=error,
            added=added, systems=inv.systems, teams=inv.teams,
        )  # fmt: skip

    @router.get("/maintenance")
    async def maintenance(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        return await maintenance_page(request, signed)

    @router.post("/maintenance")
    async def add_maintenance(request: Request, signed: SignedIn = operator) -> Response:
        ctx = context_of(getter)
        form = await read_form(request)
        check_csrf(ctx, signed.session.nonce, form)
        now = ctx.clock()
        try:
            begin, finish = windows.resolve_span(
                form.get("start") or None, form.get("end") or None, form.get("duration") or None, now
            )
            window = windows.build_window(
                window_id=None, reason=form.get("reason"), systems=[form["system"]] if form.get("system") else [],
                teams=[form["team"]] if form.get("team") else [], tags=[], start=begin, end=finish,
                created_by=signed.principal.name,
            )  # fmt: skip
            added = await windows.add(
                ctx.db, ctx.publish_maintenance, window, generated_id=True, actor=signed.principal.name,
                source="gateway", now=now,
            )  # fmt: skip
        except MaintenanceError as exc:
            status = 503 if isinstance(exc, windows.UnavailableError) else 422
            return await maintenance_page(request, signed, status, error=str(exc))
        return RedirectResponse(f"/maintenance?added={quote(added.id)}", status_code=303)

    @router.post("/maintenance/{window_id}/end")
    async def end_maintenance(request: Request, window_id: str, signed: SignedIn = operator) -> Response:
        ctx = context_of(getter)
        check_csrf(ctx, signed.session.nonce, await read_form(request))
        try:
            await windows.end(
                ctx.db, ctx.publish_maintenance, window_id, actor=signed.principal.name, source="gateway",
                now=ctx.clock(),
            )  # fmt: skip
        except UnknownWindowError as exc:
            raise Problem(404, str(exc)) from None
        except windows.UnavailableError as exc:
            raise Problem(503, str(exc)) from None
        return RedirectResponse("/maintenance", status_code=303)

    # --- reports and outbox -----------------------------------------------------------------------

    @router.get("/reports")
    async def reports(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        items = await views.reports(context_of(getter).db)
        return render(request, "reports.html", signed, reports=items)

    @router.get("/reports/{report_id}/{file_format}")
    async def report_download(report_id: str, file_format: str, signed: SignedIn = viewer) -> FileResponse:
        ctx = context_of(getter)
        return await report_file(ctx.db, ctx.settings.reports_dir, report_id, file_format)

    @router.get("/outbox")
    async def outbox(request: Request, signed: SignedIn = viewer) -> HTMLResponse:
        ctx = context_of(getter)
        if not ctx.settings.web_embedded:
            raise Problem(404, "the outbox is shown in the embedded mode only (FAO_WEB_EMBEDDED)")
        items, _ = await views.outbox_page(ctx.db, None, 100)
        return render(request, "outbox.html", signed, items=items)

    return router


def _overlaps(view: views.MaintenanceView, start: datetime, end: datetime) -> bool:
    """Whether the window is in force at some moment of [start, end)."""
    window = view.window
    if window.weekly is None:
        if window.start is None or window.end is None:
            return False
        finish = min(window.end, window.ended_at) if window.ended_at else window.end
        return window.start < end and finish > start
    if occurrence_at(window, start) is not None:
        return True
    upcoming = next_occurrence(window, start)
    return upcoming is not None and upcoming.start < end
