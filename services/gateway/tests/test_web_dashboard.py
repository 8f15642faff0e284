"""The dashboard over real NATS and FerretDB: sign-in and its cookies, CSRF on every form, the
login rate limit, sessions ending with the user or the password, actions as commands with an
audit entry, the live fragments, the language switch and the embedded outbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.webstack import (
    INCIDENT_ID,
    NOW,
    PASSWORD,
    WebStack,
    csrf_of,
    incident,
    web_settings,
    web_stack,
)

from fao.gateway.access import delete_user, set_password
from fao.gateway.sessions import SESSION_COOKIE
from fao.runtime.inventory import maintenance_to_doc
from fao.runtime.store import Document
from fao.schemas import Command, MaintenanceWindow
from fao.schemas import subjects as s


@pytest.fixture
async def web(nats_url: str, mongo_db: AsyncDatabase[Document]) -> AsyncIterator[WebStack]:
    async with web_stack(nats_url, mongo_db) as stack:
        yield stack


def _client(web: WebStack) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=web.client._transport, base_url="http://gateway.test")


async def test_pages_need_a_session_and_the_sign_in_sets_a_safe_cookie(web: WebStack) -> None:
    first = await web.client.get("/incidents")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/incidents"
    answer = await web.sign_in(web.client, "operator")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # switched off for http on loopback in this stack
    page = await web.client.get("/")
    assert page.status_code == 200
    assert 'id="who">operator<' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


async def test_the_secure_flag_is_on_by_default(nats_url: str, mongo_db: AsyncDatabase[Document]) -> None:
    async with web_stack(nats_url, mongo_db, web_settings(web_cookie_secure=True)) as web:
        # over plain http the browser keeps the Secure pre-session cookie to itself: no sign-in
        refused = await web.sign_in(web.client, "viewer")
        assert refused.status_code == 403
        https = httpx.AsyncClient(transport=web.client._transport, base_url="https://gateway.test")
        answer = await web.sign_in(https, "viewer")
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
        assert "Secure" in cookie
        assert (await https.get("/")).status_code == 200
        await https.aclose()


async def test_a_wrong_password_is_refused_without_a_session(web: WebStack) -> None:
    answer = await web.sign_in(web.client, "operator", "wrong password!")
    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text
    assert SESSION_COOKIE not in web.client.cookies
    unknown = await web.sign_in(web.client, "nobody", PASSWORD)
    assert unknown.status_code == 401


async def test_every_form_needs_the_csrf_token(web: WebStack) -> None:
    # sign-in without the token of the sign-in page
    await web.client.get("/login")
    no_token = await web.client.post("/login", data={"username": "operator", "password": PASSWORD})
    assert no_token.status_code == 403
    assert no_token.headers["content-type"] == "application/problem+json"
    assert SESSION_COOKIE not in web.client.cookies
    await web.sign_in(web.client, "operator")
    commands_before = (await web.js.stream_info(s.COMMANDS_STREAM)).state.messages
    for path, data in (
        (f"/incidents/{INCIDENT_ID}/ack", {}),
        (f"/incidents/{INCIDENT_ID}/resolve", {"csrf": "forged"}),
        (f"/incidents/{INCIDENT_ID}/note", {"text": "x"}),
        ("/maintenance", {"reason": "x", "system": "e-service", "duration": "1h"}),
        ("/logout", {}),
    ):
        answer = await web.client.post(path, data=data)
        assert answer.status_code == 403, path
        assert "CSRF" in answer.json()["detail"]
    assert (await web.js.stream_info(s.COMMANDS_STREAM)).state.messages == commands_before
    assert await web.db["maintenance"].count_documents({}) == 0
    # a token of another session is no good either
    other = _client(web)
    await web.sign_in(other, "admin")
    foreign = csrf_of((await other.get("/")).text)
    await other.aclose()
    answer = await web.client.post(f"/incidents/{INCIDENT_ID}/ack", data={"csrf": foreign})
    assert answer.status_code == 403


async def test_sign_in_attempts_are_limited_per_user_and_address(web: WebStack) -> None:
    for _ in range(3):  # login_limit of the test stack
        assert (await web.sign_in(web.client, "operator", "wrong password!")).status_code == 401
    limited = await web.sign_in(web.client, "operator", PASSWORD)
    assert limited.status_code == 429, "even the right password waits for the window"
    assert SESSION_COOKIE not in web.client.cookies
    # another user from the same address is not limited by it
    assert (await web.sign_in(_client(web), "viewer")).status_code == 303
    # the slots are forgotten once the window is long over
    assert await web.ctx.limiter.forget_old(NOW + timedelta(days=365)) >= 3


async def test_a_session_ends_with_a_new_password_or_a_deleted_user(web: WebStack) -> None:
    await web.sign_in(web.client, "operator")
    assert (await web.client.get("/")).status_code == 200
    await set_password(web.db, "operator", "another long password", NOW)
    assert (await web.client.get("/")).status_code == 303
    await web.sign_in(web.client, "operator", "another long password")
    assert (await web.client.get("/")).status_code == 200
    await delete_user(web.db, "operator")
    assert (await web.client.get("/")).status_code == 303


async def test_a_tampered_session_cookie_is_not_a_session(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    cookie = web.client.cookies[SESSION_COOKIE]
    body, mac = cookie.split(".")
    import base64

    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().replace("|viewer|", "|admin|")
    forged = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=") + "." + mac
    client = _client(web)
    client.cookies.set(SESSION_COOKIE, forged)
    assert (await client.get("/")).status_code == 303
    await client.aclose()


async def test_acknowledge_from_the_dashboard_is_a_command_with_an_audit_entry(web: WebStack) -> None:
    await web.sign_in(web.client, "operator")
    page = await web.client.get("/")
    assert f'action="/incidents/{INCIDENT_ID}/ack"' in page.text
    answer = await web.client.post(f"/incidents/{INCIDENT_ID}/ack", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/incidents/{INCIDENT_ID}?done=queued"
    info = await web.js.stream_info(s.COMMANDS_STREAM)
    msg = await web.js.get_msg(s.COMMANDS_STREAM, info.state.last_seq)
    assert msg.data is not None
    command = Command.model_validate_json(msg.data)
    assert (command.action, command.actor, command.incident_id) == ("ack", "operator", INCIDENT_ID)
    entry = (await web.audit())[-1]
    assert (entry["action"], entry["actor"], entry["source"]) == ("incident.ack", "operator", "gateway")


async def test_resolve_and_note_from_the_incident_page_are_commands_with_audit_entries(web: WebStack) -> None:
    await web.sign_in(web.client, "operator")
    page = await web.client.get(f"/incidents/{INCIDENT_ID}")
    assert f'action="/incidents/{INCIDENT_ID}/resolve"' in page.text
    assert f'action="/incidents/{INCIDENT_ID}/note"' in page.text
    csrf = csrf_of(page.text)
    for path, data, action, text in (
        ("note", {"csrf": csrf, "text": "  รีสตาร์ทแล้ว  "}, "note", "รีสตาร์ทแล้ว"),
        ("resolve", {"csrf": csrf}, "resolve", ""),
    ):
        answer = await web.client.post(f"/incidents/{INCIDENT_ID}/{path}", data=data)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == f"/incidents/{INCIDENT_ID}?done=queued"
        info = await web.js.stream_info(s.COMMANDS_STREAM)
        msg = await web.js.get_msg(s.COMMANDS_STREAM, info.state.last_seq)
        assert msg.data is not None
        command = Command.model_validate_json(msg.data)
        assert (command.action, command.actor, command.incident_id, command.text) == (
            action, "operator", INCIDENT_ID, text,
        )  # fmt: skip
        entry = (await web.audit())[-1]
        assert (entry["action"], entry["actor"], entry["source"], entry["text"]) == (
            f"incident.{action}", "operator", "gateway", text,
        )  # fmt: skip
    shown = await web.client.get(f"/incidents/{INCIDENT_ID}?done=queued")
    assert 'id="command-outcome"' in shown.text


async def test_reports_are_listed_and_downloaded_from_the_dashboard(
    nats_url: str, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "2026-10.html").write_text("<h1>รายงานเดือนตุลาคม</h1>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not for you", encoding="utf-8")
    files = [
        {"format": "html", "path": str(folder / "2026-10.html"), "size": 10, "sha256": "x"},
        {"format": "json", "path": str(tmp_path / "secret.txt"), "size": 10, "sha256": "y"},
    ]
    async with web_stack(nats_url, mongo_db, web_settings(reports_dir=folder)) as web:
        await web.db["reports"].insert_one(
            {"_id": "report:2026-10", "period": "2026-10", "kind": "month", "state": "done", "files": files}
        )
        assert (await web.client.get("/reports/report:2026-10/html")).status_code == 303  # sign in first
        await web.sign_in(web.client, "viewer")
        page = await web.client.get("/reports")
        assert page.status_code == 200
        assert 'href="/reports/report%3A2026-10/html"' in page.text
        download = await web.client.get("/reports/report%3A2026-10/html")
        assert download.status_code == 200
        assert "รายงานเดือนตุลาคม" in download.text
        outside = await web.client.get("/reports/report%3A2026-10/json")
        assert outside.status_code == 404
        assert "not for you" not in outside.text


async def test_a_viewer_sees_no_action_buttons(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    page = await web.client.get("/")
    assert INCIDENT_ID in page.text
    assert "/ack" not in page.text
    assert "/resolve" not in page.text


async def test_the_overview_refreshes_a_fragment_not_the_page(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    page = await web.client.get("/")
    assert 'hx-get="/fragments/overview"' in page.text
    fragment = await web.client.get("/fragments/overview", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'data-system="e-service"' in fragment.text
    anonymous = await _client(web).get("/fragments/overview", headers={"HX-Request": "true"})
    assert anonymous.headers["hx-redirect"].startswith("/login")


async def test_thai_by_default_and_english_by_cookie(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    assert "ภาพรวม" in (await web.client.get("/")).text
    switched = await web.client.get("/lang/en?next=/monitors")
    assert switched.headers["location"] == "/monitors"
    english = (await web.client.get("/")).text
    assert "Overview" in english
    assert "ภาพรวม" not in english
    assert (await web.client.get("/lang/en?next=//evil.example")).headers["location"] == "/"


async def test_monitors_show_a_latency_sparkline_from_results_heard(web: WebStack) -> None:
    from fao.schemas import CheckResult

    for n, latency in enumerate((12.0, 40.0, 25.0)):
        web.ctx.results.add(
            CheckResult(
                monitor_id="e-service-home",
                system_id="e-service",
                zone="default",
                prober_id="p",
                started_at=NOW + timedelta(seconds=n),
                ok=n != 1,
                latency_ms=latency,
            )
        )
    await web.sign_in(web.client, "viewer")
    page = (await web.client.get("/monitors")).text
    row = page.split('data-monitor="e-service-home"')[1].split("</tr>")[0]
    svg = row.split("<svg")[1].split("</svg>")[0]
    assert "<polyline" in svg
    assert svg.count("<circle") == 1  # the one failure
    assert not any("\u0e00" <= ch <= "\u0e7f" for ch in svg), "no Thai text inside the SVG"


async def test_maintenance_from_the_dashboard_and_the_embedded_outbox(web: WebStack) -> None:
    await web.sign_in(web.client, "operator")
    page = await web.client.get("/maintenance")
    answer = await web.client.post(
        "/maintenance",
        data={"csrf": csrf_of(page.text), "system": "e-service", "reason": "ย้ายเครื่อง", "duration": "2h"},
    )
    assert answer.status_code == 303
    calendar = (await web.client.get(answer.headers["location"])).text
    assert "ย้ายเครื่อง" in calendar
    entry = (await web.audit())[-1]
    assert (entry["action"], entry["actor"], entry["source"]) == ("maintenance.add", "operator", "gateway")
    await web.db["outbox"].insert_one(
        {"_id": "d1", "text": "ระบบขัดข้อง", "created_at": NOW, "kind": "problem"}
    )
    assert "ระบบขัดข้อง" in (await web.client.get("/outbox")).text


async def test_a_window_ending_at_the_calendars_end_is_shown_and_a_huge_one_refused(web: WebStack) -> None:
    """A window from the config may end at 9999-12-31 (it has no Bangkok time: shown in UTC); one
    typed in the form that lasts longer than a hundred years is refused on the page."""
    window = MaintenanceWindow.model_validate(
        {"id": "mw-forever", "reason": "ปิดถาวร", "systems": ["mail"], "start": "2026-11-01T00:00:00Z",
         "end": "9999-12-31T23:59:59Z", "created_by": "config"}
    )  # fmt: skip
    await web.db["maintenance"].insert_one(maintenance_to_doc(window, "config"))
    await web.sign_in(web.client, "operator")
    page = await web.client.get("/maintenance")
    assert page.status_code == 200, page.text
    assert "9999-12-31 23:59 UTC" in page.text
    assert (await web.client.get("/api/v1/maintenance", headers=web.auth("viewer"))).status_code == 200
    answer = await web.client.post(
        "/maintenance",
        data={"csrf": csrf_of(page.text), "system": "e-service", "reason": "x", "duration": "99999999999h"},
    )
    assert answer.status_code == 422
    assert "at most a hundred years" in answer.text
    assert await web.db["maintenance"].count_documents({}) == 1


async def test_maintenance_form_errors_name_the_fields_not_cli_flags(web: WebStack) -> None:
    """The dashboard's form has fields, not the CLI's flags: its errors name what to fill in."""
    await web.sign_in(web.client, "operator")
    page = await web.client.get("/maintenance")
    for form, message in (
        ({"reason": "x", "duration": "2h"}, "name at least one system, team or tag"),
        ({"system": "e-service", "reason": "x"}, "give an end or a duration"),
    ):
        answer = await web.client.post("/maintenance", data={"csrf": csrf_of(page.text), **form})
        assert answer.status_code == 422
        shown = re.findall(r'<p class="error" role="alert">([^<]*)</p>', answer.text)
        assert len(shown) == 1, answer.text
        assert message in shown[0]
        assert "--" not in shown[0]
    assert await web.db["maintenance"].count_documents({}) == 0


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_a_browser_gets_error_pages_in_its_language_and_programs_problem_details(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    missing = await web.client.get("/incidents/inc-nope", headers=BROWSER)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert missing.headers["content-security-policy"].startswith("default-src 'self'")
    assert 'id="error" data-status="404"' in missing.text
    assert "ไม่พบสิ่งที่ต้องการ" in missing.text
    assert "no incident &#39;inc-nope&#39;" in missing.text
    not_allowed = await web.client.post(
        f"/incidents/{INCIDENT_ID}/ack",
        data={"csrf": csrf_of((await web.client.get("/")).text)},
        headers=BROWSER,
    )
    assert not_allowed.status_code == 403
    assert "บทบาทของคุณไม่มีสิทธิ์" in not_allowed.text
    operator = _client(web)
    await web.sign_in(operator, "operator")
    stale = await operator.post(
        f"/incidents/{INCIDENT_ID}/ack", data={"csrf": "from-an-old-tab"}, headers=BROWSER
    )
    assert stale.status_code == 403
    assert "แบบฟอร์มหมดอายุ โปรดโหลดหน้าใหม่แล้วลองอีกครั้ง" in stale.text
    operator.cookies.set("fao_lang", "en")
    english = await operator.get("/no-such-page", headers=BROWSER)
    assert english.status_code == 404
    assert "Not found" in english.text
    assert 'href="/lang/th?next=/no-such-page"' in english.text
    await operator.aclose()
    # htmx's fragment requests and programs (no text/html asked for) get problem details
    for headers in ({**BROWSER, "HX-Request": "true"}, {"Accept": "*/*"}):
        answer = await web.client.get("/fragments/incidents/inc-nope", headers=headers)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
    api = await web.client.get("/api/v1/incidents/inc-nope", headers={**BROWSER, **web.auth("viewer")})
    assert api.headers["content-type"] == "application/problem+json"


async def test_static_htmx_is_served_locally(web: WebStack) -> None:
    answer = await web.client.get("/static/htmx-2.0.4.min.js")
    assert answer.status_code == 200
    assert "htmx" in answer.text[:2000]


async def test_the_incident_list_filters_by_system_and_status(web: WebStack) -> None:
    await web.sign_in(web.client, "viewer")
    everything = (await web.client.get("/incidents")).text
    assert everything.count('href="/incidents/inc-') == 3
    resolved = (await web.client.get("/incidents?status=resolved")).text
    assert resolved.count('href="/incidents/inc-') == 1
    intranet = (await web.client.get("/incidents?system=intranet&status=bogus")).text
    assert intranet.count('href="/incidents/inc-') == 1


async def test_muted_incidents_say_they_were_not_alerted_and_under_which_parent(web: WebStack) -> None:
    """A dependant held under its parent's incident, or an incident during maintenance, is open but
    sent no alert: the overview and its page say so (was: a red "ขัดข้อง" like any other, with no
    word that nobody was told nor which incident it is under)."""
    child, quiet = "inc-00000000000000000004", "inc-00000000000000000005"
    for doc in (
        incident(child, system_id="mail", monitor_ids=["mail-smtp"], muted="dependency",
                 parent_incident_id=INCIDENT_ID, alerted=False),
        incident(quiet, system_id="intranet", monitor_ids=["intranet-home"], muted="maintenance", alerted=False),
    ):  # fmt: skip
        await web.db["incidents"].insert_one({"_id": doc.id, **doc.model_dump(mode="python")})
    await web.sign_in(web.client, "viewer")
    overview = (await web.client.get("/")).text
    assert 'data-muted="dependency">ไม่แจ้งเตือน (รวมภายใต้เหตุของระบบที่พึ่งพา)<' in overview
    assert 'data-muted="maintenance">ไม่แจ้งเตือน (อยู่ในช่วงปิดปรับปรุง)<' in overview
    assert overview.count("data-muted=") == 2, "the alerted incident has no such label"
    await web.client.get("/lang/en?next=/")
    page = (await web.client.get(f"/incidents/{child}")).text
    assert "Not alerted (under the incident of a system it depends on)" in page
    assert f'<a href="/incidents/{INCIDENT_ID}">{INCIDENT_ID}</a>' in page
    assert "Not alerted (during maintenance)" in (await web.client.get(f"/incidents/{quiet}")).text
    assert 'id="incident-muted"' not in (await web.client.get(f"/incidents/{INCIDENT_ID}")).text
