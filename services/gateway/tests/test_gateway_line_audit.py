"""What people change in LINE is in the audit log (source ``line``): Acknowledge / Resolve taps
and Official Account reports, posted to the webhook as LINE signs them, over real NATS + FerretDB
and the fake LINE API; then read back with ``fao audit`` as a process. A failed audit write
loses no command."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest
import structlog
from pymongo.errors import PyMongoError
from services.gateway.tests.stack import (
    CITIZEN,
    GROUP,
    INCIDENT,
    MEMBER,
    STRANGER,
    GatewayStack,
    incident_doc,
)
from structlog.testing import capture_logs

from fao.gateway import line_audit
from fao.runtime import audit
from fao.runtime.store import Document
from fao.testing.fake_line import message_event, postback_event

ACK = f"action=ack&incident={INCIDENT}"
RESOLVE = f"action=resolve&incident={INCIDENT}"


async def entries(gw: GatewayStack) -> list[Document]:
    return await gw.db["audit"].find({}).sort("at", 1).to_list()


async def fao_audit(gw: GatewayStack) -> str:
    """``fao audit`` as a process on the test's database."""
    env = {**os.environ, "FAO_MONGO_URL": gw.mongo_url, "FAO_MONGO_DB": gw.db.name}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fao.cli", "audit", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_taps_and_reports_in_line_are_audited_and_listed_by_fao_audit(gw: GatewayStack) -> None:
    # a citizen's report while nothing is open: sent at once, named by its reference
    assert (await gw.post([message_event("เข้าเว็บไซต์กรมไม่ได้ค่ะ", user_id=CITIZEN)])).status_code == 200
    reference = re.search(r"FAO-[0-9A-Z]{8}", gw.reply_texts()[-1])
    assert reference is not None
    await gw.db["incidents"].insert_one(incident_doc())
    ack = postback_event(ACK, group_id=GROUP, user_id=MEMBER)
    refused = postback_event(ACK, group_id=GROUP, user_id=STRANGER)
    assert (await gw.post([ack, refused])).status_code == 200
    assert (await gw.post([ack])).status_code == 200  # replayed: one command, one entry
    assert (await gw.post([postback_event(RESOLVE, group_id=GROUP, user_id=MEMBER)])).status_code == 200
    # a member's own report, added to the open incident from the quick reply
    await gw.post([message_event("ยื่นคำขอไม่ได้", user_id=MEMBER)])
    pick = gw.line.replies[-1]["messages"][0]["quickReply"]["items"][0]["action"]["data"]
    await gw.post([postback_event(pick, user_id=MEMBER)])
    commands = await gw.commands()
    assert [c.action for c in commands] == ["open_manual", "ack", "resolve", "note"]

    found = await entries(gw)
    assert [(e["actor"], e["source"], e["action"]) for e in found] == [
        (reference.group(), "line", "incident.open_manual"),
        ("somchai", "line", "incident.ack"),
        ("somchai", "line", "incident.resolve"),
        ("somchai", "line", "incident.note"),
    ]
    assert [e["command_id"] for e in found] == [str(c.command_id) for c in commands]
    assert [e["incident_id"] for e in found] == [None, INCIDENT, INCIDENT, INCIDENT]
    assert [e["changes"] for e in found[1:3]] == [
        [{"collection": "incidents", "key": INCIDENT, "kind": "change",
          "diff": {"status": {"before": "open", "after": "acknowledged"}}}],
        [{"collection": "incidents", "key": INCIDENT, "kind": "change",
          "diff": {"status": {"before": "open", "after": "resolved"}}}],
    ]  # fmt: skip
    assert (found[0]["reference"], found[3]["system_id"]) == (reference.group(), "e-service")
    assert CITIZEN not in str(found), "a citizen's LINE user id stays out of the log"
    assert "เข้าเว็บไซต์" not in str(found), "so does the text of a report"

    listed = await fao_audit(gw)
    assert f"{reference.group()} [line] incident.open_manual {reference.group()} (queued)" in listed
    assert f"somchai [line] incident.ack {INCIDENT} (queued): 1 change(s)" in listed
    assert "    status: open → acknowledged" in listed
    assert f"somchai [line] incident.resolve {INCIDENT} (queued): 1 change(s)" in listed
    assert "    status: open → resolved" in listed
    assert f"somchai [line] incident.note {found[3]['reference']} {INCIDENT} (queued)" in listed


async def test_a_failed_audit_write_is_a_warning_and_the_command_is_sent(
    gw: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(_db: object, _doc: Document) -> None:
        raise PyMongoError("audit collection unavailable")

    monkeypatch.setattr(audit, "record", refuse)
    with capture_logs() as logs:
        # a logger of its own: the module's may be bound already to another test's output
        monkeypatch.setattr(line_audit, "log", structlog.get_logger())
        assert (await gw.post([message_event("ระบบล่ม", user_id=CITIZEN)])).status_code == 200
        await gw.db["incidents"].insert_one(incident_doc())
        assert (await gw.post([postback_event(ACK, group_id=GROUP, user_id=MEMBER)])).status_code == 200
    assert [c.action for c in await gw.commands()] == ["open_manual", "ack"]
    assert "FAO-" in gw.reply_texts()[0], "the reporter still gets a reference"
    warnings = [e for e in logs if e["event"] == "audit_not_written"]
    assert [(w["log_level"], w["action"]) for w in warnings] == [
        ("warning", "incident.open_manual"),
        ("warning", "incident.ack"),
    ]
    assert "audit collection unavailable" in warnings[0]["error"]
    assert await entries(gw) == []
