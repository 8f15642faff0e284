"""The REST API (``/api/v1``) over real NATS and FerretDB: roles per route, tokens, pagination,
problem details, commands with the correlator's answer, maintenance windows, audit entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.webstack import (
    HIDDEN_INCIDENT_ID,
    INCIDENT_ID,
    NOW,
    OLD_INCIDENT_ID,
    WebStack,
    web_settings,
    web_stack,
)

from fao.gateway.access import revoke_token
from fao.runtime.bus import kv_keys, maintenance_bucket
from fao.runtime.launch import free_port, start_nats
from fao.runtime.store import Document
from fao.schemas import CheckResult, Command, CommandRejected, MaintenanceWindow, command_event_id
from fao.schemas import subjects as s
from fao.schemas.results import Observations
from fao.schemas.subjects import maintenance_key

PROBLEM = "application/problem+json"


@pytest.fixture
async def web(nats_url: str, mongo_db: AsyncDatabase[Document], tmp_path: Path) -> AsyncIterator[WebStack]:
    async with web_stack(nats_url, mongo_db, web_settings(reports_dir=tmp_path / "reports")) as stack:
        yield stack


async def test_without_a_token_every_api_call_is_401_problem_details(web: WebStack) -> None:
    answer = await web.client.get("/api/v1/incidents")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"].startswith("Bearer")
    body = answer.json()
    assert body["status"] == 401
    assert body["title"] == "Not signed in"
    wrong = await web.client.get("/api/v1/incidents", headers={"Authorization": "Bearer fao_nope"})
    assert wrong.status_code == 401


async def test_a_revoked_token_works_no_more(web: WebStack) -> None:
    assert (await web.client.get("/api/v1/me", headers=web.auth("operator"))).json() == {
        "name": "operator-bot",
        "role": "operator",
    }
    token_id = web.tokens["operator"].split("_")[1]
    await revoke_token(web.db, token_id, NOW)
    answer = await web.client.get("/api/v1/me", headers=web.auth("operator"))
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM


async def test_a_token_whose_secret_part_is_changed_is_refused(web: WebStack) -> None:
    token = web.tokens["admin"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = await web.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


async def test_a_viewer_reads_but_may_not_act_and_nothing_is_sent(web: WebStack) -> None:
    assert (await web.client.get("/api/v1/incidents", headers=web.auth("viewer"))).status_code == 200
    before = (await web.ctx.db["audit"].count_documents({}), await _commands(web))
    for path, body in (
        (f"/api/v1/incidents/{INCIDENT_ID}/acknowledge", {}),
        (f"/api/v1/incidents/{INCIDENT_ID}/resolve", {}),
        (f"/api/v1/incidents/{INCIDENT_ID}/notes", {"text": "x"}),
        ("/api/v1/maintenance", {"reason": "x", "systems": ["e-service"], "duration": "1h"}),
    ):
        answer = await web.client.post(path, json=body, headers=web.auth("viewer"))
        assert answer.status_code == 403, path
        assert answer.headers["content-type"] == PROBLEM
        assert "operator" in answer.json()["detail"]
    assert (await web.ctx.db["audit"].count_documents({}), await _commands(web)) == before
    assert await web.db["maintenance"].count_documents({}) == 0


async def test_only_admins_see_contact_details(web: WebStack) -> None:
    for role in ("viewer", "operator"):
        people = (await web.client.get("/api/v1/people", headers=web.auth(role))).json()
        assert people[0]["name"] == "สมชาย"
        assert people[0]["line_user_id"] is None
        assert people[0]["email"] is None
        assert people[0]["phone"] is None
        assert (await web.client.get("/api/v1/people/contacts", headers=web.auth(role))).status_code == 403
    admin = (await web.client.get("/api/v1/people", headers=web.auth("admin"))).json()
    assert admin[0]["line_user_id"] == "U" + "1" * 32
    assert admin[0]["email"] == "somchai@example.go.th"
    contacts = await web.client.get("/api/v1/people/contacts", headers=web.auth("admin"))
    assert contacts.json()[0]["phone"] == "+66 2 123 4567"


async def test_teams_are_listed_without_their_targets(web: WebStack) -> None:
    teams = (await web.client.get("/api/v1/teams", headers=web.auth("viewer"))).json()
    assert [(t["id"], t["platform"]) for t in teams] == [("apps", False), ("platform", True)]
    assert "email" not in teams[0]
    assert "webhooks" not in teams[0]


async def test_systems_show_their_state_and_monitors_their_last_outcomes(web: WebStack) -> None:
    systems = (await web.client.get("/api/v1/systems", headers=web.auth("viewer"))).json()["items"]
    states = {s["id"]: (s["state"], s["open_incident_id"]) for s in systems}
    assert states["e-service"] == ("down", INCIDENT_ID)
    assert states["mail"] == ("unknown", None)
    monitor = (await web.client.get("/api/v1/monitors/e-service-home", headers=web.auth("viewer"))).json()
    assert monitor["status"] == "down"
    assert monitor["samples"][0]["ok"] is False
    assert monitor["check"]["type"] == "http"
    missing = await web.client.get("/api/v1/monitors/nope", headers=web.auth("viewer"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


async def test_incidents_filter_and_page_with_a_cursor(web: WebStack) -> None:
    headers = web.auth("viewer")
    first = (await web.client.get("/api/v1/incidents?limit=2", headers=headers)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = (
        await web.client.get(f"/api/v1/incidents?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    assert second["next_cursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 3
    resolved = (await web.client.get("/api/v1/incidents?status=resolved", headers=headers)).json()["items"]
    assert [i["status"] for i in resolved] == ["resolved"]
    by_team = (await web.client.get("/api/v1/incidents?team=platform", headers=headers)).json()["items"]
    assert {i["system_id"] for i in by_team} == {"intranet"}
    since = (NOW - timedelta(days=1)).isoformat()
    recent = (await web.client.get("/api/v1/incidents", params={"since": since}, headers=headers)).json()[
        "items"
    ]
    assert {i["status"] for i in recent} == {"open"}
    bad = await web.client.get("/api/v1/incidents?cursor=!!!", headers=headers)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == PROBLEM
    invalid = await web.client.get("/api/v1/incidents?status=sleeping", headers=headers)
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == PROBLEM
    assert invalid.json()["errors"][0]["loc"] == ["query", "status"]


async def test_incidents_filter_by_system_kind_and_until(web: WebStack) -> None:
    await web.db["incidents"].update_one({"_id": HIDDEN_INCIDENT_ID}, {"$set": {"kind": "slow"}})

    async def ids(**params: str) -> set[str]:
        answer = await web.client.get("/api/v1/incidents", params=params, headers=web.auth("viewer"))
        assert answer.status_code == 200, answer.text
        return {i["id"] for i in answer.json()["items"]}

    assert await ids() == {INCIDENT_ID, OLD_INCIDENT_ID, HIDDEN_INCIDENT_ID}
    assert await ids(system="intranet") == {HIDDEN_INCIDENT_ID}
    assert await ids(system="e-service") == {INCIDENT_ID, OLD_INCIDENT_ID}
    assert await ids(kind="slow") == {HIDDEN_INCIDENT_ID}
    assert await ids(kind="outage") == {INCIDENT_ID, OLD_INCIDENT_ID}
    assert await ids(until=(NOW - timedelta(days=1)).isoformat()) == {OLD_INCIDENT_ID}
    assert await ids(system="e-service", status="open", kind="outage") == {INCIDENT_ID}


async def test_a_monitor_shows_the_results_heard_with_latency_and_observations(web: WebStack) -> None:
    result = CheckResult(
        monitor_id="e-service-home", system_id="e-service", zone="default", prober_id="p1", started_at=NOW,
        ok=True, latency_ms=42.5, http_status=200,
        observations=Observations(connect_ms=3.5, first_byte_ms=40.0),
    )  # fmt: skip
    await web.nc.publish(s.result_subject("e-service-home"), result.model_dump_json().encode())
    await web.nc.flush()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        monitor = (await web.client.get("/api/v1/monitors/e-service-home", headers=web.auth("viewer"))).json()
        if monitor["recent_results"]:
            break
        assert loop.time() < deadline, "the published result never reached the API"
        await asyncio.sleep(0.05)
    [heard] = monitor["recent_results"]
    assert (heard["ok"], heard["latency_ms"], heard["http_status"]) == (True, 42.5, 200)
    assert heard["observations"] == {"connect_ms": 3.5, "first_byte_ms": 40.0, "steps": []}
    listed = (await web.client.get("/api/v1/monitors?system=e-service", headers=web.auth("viewer"))).json()
    by_id = {m["id"]: m for m in listed["items"]}
    assert sorted(by_id) == ["e-service-db", "e-service-home"]
    assert by_id["e-service-home"]["recent_results"] == monitor["recent_results"]
    assert by_id["e-service-db"]["recent_results"] == []


async def test_an_incident_has_its_timeline_and_delivery_log(web: WebStack) -> None:
    detail = (await web.client.get(f"/api/v1/incidents/{INCIDENT_ID}", headers=web.auth("viewer"))).json()
    assert detail["incident"]["id"] == INCIDENT_ID
    assert [e["type"] for e in detail["timeline"]] == ["opened"]
    assert detail["deliveries"][0]["status"] == "outbox"


async def test_unknown_paths_and_methods_are_problem_details(web: WebStack) -> None:
    for answer, status in (
        (await web.client.get("/api/v1/nowhere", headers=web.auth("viewer")), 404),
        (await web.client.delete("/api/v1/incidents", headers=web.auth("viewer")), 405),
        (await web.client.get("/nowhere"), 404),
        (await web.client.get(f"/api/v1/incidents/{'x' * 30}", headers=web.auth("viewer")), 404),
    ):
        assert answer.status_code == status
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["status"] == status


async def _commands(web: WebStack) -> int:
    return int((await web.js.stream_info(s.COMMANDS_STREAM)).state.messages)


async def _last_command(web: WebStack) -> Command:
    js = web.js
    info = await js.stream_info(s.COMMANDS_STREAM)
    msg = await js.get_msg(s.COMMANDS_STREAM, info.state.last_seq)
    assert msg.data is not None
    return Command.model_validate_json(msg.data)


async def test_without_an_answer_a_command_is_202_queued_and_audited(web: WebStack) -> None:
    answer = await web.client.post(
        f"/api/v1/incidents/{INCIDENT_ID}/acknowledge", json={"text": "กำลังดู"}, headers=web.auth("operator")
    )
    assert answer.status_code == 202
    body = answer.json()
    assert body["state"] == "queued"
    command = await _last_command(web)
    assert str(command.command_id) == body["command_id"]
    assert (command.action, command.actor, command.source, command.incident_id) == (
        "ack", "operator-bot", "api", INCIDENT_ID,
    )  # fmt: skip
    entry = (await web.audit())[-1]
    assert (entry["actor"], entry["source"], entry["action"], entry["outcome"]) == (
        "operator-bot", "api", "incident.ack", "queued",
    )  # fmt: skip


async def _answer_like_the_correlator(web: WebStack, reject: bool, sent: asyncio.Future[Command]) -> None:
    """Waits for the next command and answers it: its event in the timeline, or a rejection."""
    command = await sent
    nc = web.nc
    if reject:
        rejection = CommandRejected(
            command_id=command.command_id, action=command.action, actor=command.actor, source=command.source,
            incident_id=command.incident_id, at=NOW, reason="already resolved",
        )  # fmt: skip
        await nc.publish(s.command_rejected_subject(), rejection.model_dump_json().encode())
        return
    await web.db["incident_timeline"].insert_one(
        {"_id": str(command_event_id(command.command_id)), "incident_id": INCIDENT_ID, "system_id": "e-service",
         "at": NOW, "type": "resolved", "actor": command.actor, "text": ""}
    )  # fmt: skip


@pytest.mark.parametrize("reject", [False, True])
async def test_a_command_waits_for_the_correlators_answer(web: WebStack, reject: bool) -> None:
    nc = web.nc
    sent: asyncio.Future[Command] = asyncio.get_running_loop().create_future()

    async def on_command(msg: Msg) -> None:
        if not sent.done():
            sent.set_result(Command.model_validate_json(msg.data))

    subscription = await nc.subscribe(s.COMMANDS_SUBJECTS, cb=on_command)
    await nc.flush()
    correlator = asyncio.create_task(_answer_like_the_correlator(web, reject, sent))
    answer = await web.client.post(f"/api/v1/incidents/{INCIDENT_ID}/resolve", headers=web.auth("operator"))
    await correlator
    await subscription.unsubscribe()
    if reject:
        assert answer.status_code == 409
        assert answer.json()["state"] == "rejected"
        assert answer.json()["reason"] == "already resolved"
    else:
        assert answer.status_code == 200
        assert answer.json()["state"] == "applied"
    assert (await web.audit())[-1]["outcome"] == answer.json()["state"]


async def test_a_command_on_an_unknown_incident_is_404_and_sends_nothing(web: WebStack) -> None:
    before = await _commands(web)
    answer = await web.client.post("/api/v1/incidents/inc-nope/acknowledge", headers=web.auth("operator"))
    assert answer.status_code == 404
    assert await _commands(web) == before


async def test_maintenance_windows_are_made_and_ended_with_an_audit_entry(web: WebStack) -> None:
    headers = web.auth("operator")
    made = await web.client.post(
        "/api/v1/maintenance",
        json={"reason": "ย้ายเครื่อง", "systems": ["e-service"], "duration": "2h"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    window_id = made.json()["id"]
    kv = await maintenance_bucket(web.js)
    assert (await kv.get(maintenance_key(window_id))).value is not None
    listed = (await web.client.get("/api/v1/maintenance", headers=web.auth("viewer"))).json()["items"]
    assert [(v["window"]["id"], v["status"]) for v in listed] == [(window_id, "active")]
    ended = await web.client.post(f"/api/v1/maintenance/{window_id}/end", headers=headers)
    assert ended.status_code == 200
    assert ended.json()["changed"] is True
    actions = [(e["action"], e["actor"], e["source"]) for e in await web.audit()]
    assert actions[-2:] == [
        ("maintenance.add", "operator-bot", "api"),
        ("maintenance.end", "operator-bot", "api"),
    ]
    unknown = await web.client.post(
        "/api/v1/maintenance", json={"reason": "x", "systems": ["nope"], "duration": "1h"}, headers=headers
    )
    assert unknown.status_code == 422
    assert "unknown system" in unknown.json()["detail"]
    assert (await web.client.post("/api/v1/maintenance/mw-none/end", headers=headers)).status_code == 404


async def test_times_and_periods_out_of_range_are_422_and_change_nothing(web: WebStack) -> None:
    """Dates near the calendar's ends have no UTC or Bangkok time: refused, never a 500, and no
    window is stored that would break every page showing it."""
    headers = web.auth("operator")
    audit_before = await web.db["audit"].count_documents({})
    for path, body, detail in (
        ("/api/v1/maintenance", {"reason": "x", "systems": ["e-service"], "duration": "99999999999999h"},
         "at most a hundred years"),
        ("/api/v1/maintenance", {"reason": "x", "systems": ["e-service"], "end": "9999-12-31T23:59:59Z"},
         "the end must be within a hundred years of now"),
        ("/api/v1/maintenance",
         {"reason": "x", "systems": ["e-service"], "start": "0001-01-01T00:00:00Z", "duration": "1h"},
         "the start must be within a hundred years of now"),
        ("/api/v1/reports", {"period": "9999-12"}, "period"),
        ("/api/v1/reports", {"period": "0000-01"}, "period"),
    ):  # fmt: skip
        answer = await web.client.post(path, json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        assert detail in answer.json()["detail"], answer.json()
    for query in ("since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00"):
        answer = await web.client.get(f"/api/v1/incidents?{query}", headers=headers)
        assert answer.status_code == 422, (query, answer.text)
        assert "out of range" in answer.json()["detail"]
    assert await web.db["maintenance"].count_documents({}) == 0
    assert await web.db["report_requests"].count_documents({}) == 0
    assert await web.db["audit"].count_documents({}) == audit_before


async def test_reports_are_listed_and_downloaded_only_from_the_reports_folder(
    web: WebStack, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "2026-10.html").write_text("<h1>รายงาน</h1>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not for you", encoding="utf-8")
    files = [
        {"format": "html", "path": str(folder / "2026-10.html"), "size": 10, "sha256": "x"},
        {"format": "json", "path": str(tmp_path / "secret.txt"), "size": 10, "sha256": "y"},
    ]
    await web.db["reports"].insert_one(
        {"_id": "report:2026-10", "period": "2026-10", "kind": "month", "state": "done", "files": files}
    )
    listed = (await web.client.get("/api/v1/reports", headers=web.auth("viewer"))).json()["items"]
    assert [(r["id"], [f["format"] for f in r["files"]]) for r in listed] == [
        ("report:2026-10", ["html", "json"])
    ]
    html = await web.client.get("/api/v1/reports/report:2026-10/files/html", headers=web.auth("viewer"))
    assert html.status_code == 200
    assert "รายงาน" in html.text
    outside = await web.client.get("/api/v1/reports/report:2026-10/files/json", headers=web.auth("viewer"))
    assert outside.status_code == 404
    assert "not for you" not in outside.text


async def test_a_report_is_asked_for_by_an_operator_and_its_state_read(web: WebStack) -> None:
    body = {"period": "2026-09"}
    refused = await web.client.post("/api/v1/reports", json=body, headers=web.auth("viewer"))
    assert refused.status_code == 403
    asked = await web.client.post("/api/v1/reports", json=body, headers=web.auth("operator"))
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["period"], request["status"], request["requested_by"]) == (
        "2026-09",
        "queued",
        "operator-bot",
    )
    stored = await web.db["report_requests"].find_one({"_id": request["id"]})
    assert stored is not None
    assert stored["status"] == "queued"
    [entry] = await web.db["audit"].find({"action": "report.request"}).to_list()
    assert (entry["actor"], entry["source"], entry["period"]) == ("operator-bot", "api", "2026-09")
    # the reporter answers (fao.reporter.requests); the state is read back
    await web.db["report_requests"].update_one(
        {"_id": request["id"]}, {"$set": {"status": "done", "report_id": "report:2026-09"}}
    )
    state = await web.client.get(f"/api/v1/reports/requests/{request['id']}", headers=web.auth("viewer"))
    assert (state.json()["status"], state.json()["report_id"]) == ("done", "report:2026-09")
    missing = await web.client.get("/api/v1/reports/requests/nope", headers=web.auth("viewer"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    running = f"{NOW.year}-{NOW.month:02d}"
    not_over = await web.client.post(
        "/api/v1/reports", json={"period": running}, headers=web.auth("operator")
    )
    assert not_over.status_code == 409
    assert "is not over yet" in not_over.json()["detail"]
    bad = await web.client.post("/api/v1/reports", json={"period": "2026-13"}, headers=web.auth("operator"))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM


async def test_line_quota_and_outbox(web: WebStack) -> None:
    assert (await web.client.get("/api/v1/line/quota", headers=web.auth("viewer"))).json() == {"known": False}
    await web.db["line_state"].insert_one({"_id": "quota", "limit": 500, "usage": 120, "checked_at": NOW})
    quota = (await web.client.get("/api/v1/line/quota", headers=web.auth("viewer"))).json()
    assert (quota["known"], quota["limit"], quota["usage"]) == (True, 500, 120)
    for n in range(3):
        await web.db["outbox"].insert_one(
            {
                "_id": f"d{n}",
                "text": f"ข้อความ {n}",
                "created_at": NOW + timedelta(seconds=n),
                "kind": "problem",
            }
        )
    page = (await web.client.get("/api/v1/outbox?limit=2", headers=web.auth("viewer"))).json()
    assert [i["id"] for i in page["items"]] == ["d2", "d1"]
    rest = (
        await web.client.get(
            f"/api/v1/outbox?limit=2&cursor={page['next_cursor']}", headers=web.auth("viewer")
        )
    ).json()
    assert [i["id"] for i in rest["items"]] == ["d0"]
    assert rest["next_cursor"] is None


async def test_the_openapi_document_is_published_without_a_token(web: WebStack) -> None:
    doc = (await web.client.get("/api/v1/openapi.json")).json()
    assert doc["info"]["title"] == "Fao API"
    assert "/incidents/{incident_id}/acknowledge" in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/incidents"]["get"]["security"] == [{"HTTPBearer": []}]


async def test_with_nats_stopped_a_maintenance_window_is_503_and_nothing_is_stored(
    mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """The KV write fails, so the MongoDB write is undone: no window in either store, no audit."""
    port = free_port()
    server = start_nats(tmp_path / "nats", port)
    try:
        async with web_stack(server.url, mongo_db, web_settings(reports_dir=tmp_path / "reports")) as web:
            headers = web.auth("operator")
            made = await web.client.post(
                "/api/v1/maintenance", json={"id": "before", "reason": "x", "systems": ["e-service"],
                                             "duration": "1h"}, headers=headers,
            )  # fmt: skip
            assert made.status_code == 201, made.text
            audit_before = await web.db["audit"].count_documents({})
            server.stop()
            refused = await web.client.post(
                "/api/v1/maintenance",
                json={"id": "during", "reason": "x", "systems": ["e-service"], "duration": "1h"},
                headers=headers,
            )
            ended = await web.client.post("/api/v1/maintenance/before/end", headers=headers)
            for answer in (refused, ended):
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == PROBLEM
                assert answer.json()["detail"].startswith("cannot reach NATS")
                assert answer.json()["detail"].endswith("nothing was changed")
            assert [doc["_id"] for doc in await web.db["maintenance"].find({}).to_list()] == ["before"]
            stored = await web.db["maintenance"].find_one({"_id": "before"})
            assert stored is not None
            assert stored.get("ended_at") is None
            assert await web.db["audit"].count_documents({}) == audit_before
            server = start_nats(tmp_path / "nats", port)
            kv = await maintenance_bucket(web.js)
            assert set(await kv_keys(web.js, s.MAINTENANCE_BUCKET)) == {maintenance_key("before")}
            window = MaintenanceWindow.model_validate_json(
                (await kv.get(maintenance_key("before"))).value or b""
            )
            assert window.ended_at is None
    finally:
        server.stop()
