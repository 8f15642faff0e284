"""``fao incidents`` commands against real NATS and FerretDB: what the CLI publishes, how it reports
the correlator's answer (played here by a stand-in responder reading the commands stream), and
``show`` with a timeline."""

from __future__ import annotations

import asyncio
import getpass
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner, Result

from fao.cli.incidents import display_width
from fao.cli.main import app
from fao.notifier.deliveries import DeliveryStore, claim_id
from fao.notifier.render import load_catalogue, render_event
from fao.runtime.inventory import SYSTEMS, to_doc
from fao.runtime.launch import free_port
from fao.runtime.store import Document
from fao.schemas import (
    Command,
    CommandRejected,
    Incident,
    IncidentEvent,
    IncidentEventType,
    System,
    command_event_id,
)
from fao.schemas import subjects as s

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
Reply = Callable[[JetStreamContext, Command], Awaitable[None]]


async def invoke(args: list[str]) -> Result:
    """Run the CLI as a user would; in a thread, since it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, app, args, color=True)


async def respond(js: JetStreamContext, reply: Reply) -> Msg:
    """A stand-in for the correlator: take the next command from the stream and answer it."""
    sub = await js.pull_subscribe(s.COMMANDS_SUBJECTS, durable="t-responder", stream=s.COMMANDS_STREAM)
    [msg] = await sub.fetch(1, timeout=15.0)
    await msg.ack()
    await reply(js, Command.model_validate_json(msg.data))
    return msg


def rejection(command: Command, reason: str, command_id: uuid.UUID | None = None) -> CommandRejected:
    return CommandRejected(
        command_id=command_id or command.command_id, action=command.action, actor=command.actor,
        source=command.source, incident_id=command.incident_id, at=NOW, reason=reason,
    )  # fmt: skip


def event(event_id: uuid.UUID, event_type: IncidentEventType, incident_id: str) -> IncidentEvent:
    incident = Incident(
        id=incident_id, system_id="e-service", status="open", title="หน้าแรก: HTTP 503", started_at=NOW
    )
    return IncidentEvent(event_id=event_id, type=event_type, at=NOW, incident=incident, actor="cli:somchai")


async def publish_event(js: JetStreamContext, ev: IncidentEvent) -> None:
    await js.publish(
        s.incident_subject(ev.type), ev.model_dump_json().encode(), stream=s.INCIDENTS_STREAM,
        headers={"Nats-Msg-Id": str(ev.event_id)},
    )  # fmt: skip


async def audited(db: AsyncDatabase[Document]) -> list[Document]:
    """The audit entries, oldest first, without their ``_id``."""
    return [
        {k: v for k, v in d.items() if k != "_id"} for d in await db["audit"].find({}).sort("_id").to_list()
    ]


async def test_ack_publishes_a_command_and_reports_its_rejection_in_red(
    env: None, js: JetStreamContext, mongo_db: AsyncDatabase[Document]
) -> None:
    async def reject(js: JetStreamContext, command: Command) -> None:
        for answer in (
            rejection(command, "someone else's command", command_id=uuid.uuid4()),  # not ours: ignored
            rejection(command, "incident inc-1 is already resolved"),
        ):
            await js.publish(
                s.command_rejected_subject(), answer.model_dump_json().encode(), stream=s.COMMANDS_STREAM
            )

    responder = asyncio.create_task(respond(js, reject))
    result = await invoke(["incidents", "ack", "inc-1", "--as", "somchai"])
    msg = await responder

    assert msg.subject == "fao.commands.v1.ack"
    command = Command.model_validate_json(msg.data)
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == str(command.command_id)
    assert (command.action, command.actor, command.source, command.incident_id) == (
        "ack",
        "somchai",
        "cli",
        "inc-1",
    )
    assert command.command_id.version == 4
    assert result.exit_code == 1, result.output
    assert "\x1b[31mrejected: incident inc-1 is already resolved" in result.output
    assert "someone else's command" not in result.output
    (entry,) = await audited(mongo_db)
    assert entry == {
        "at": command.at.replace(microsecond=command.at.microsecond // 1000 * 1000),  # BSON keeps ms
        "actor": "somchai", "source": "cli", "action": "incident.ack", "changes": [],
        "incident_id": "inc-1", "command_id": str(command.command_id), "outcome": "rejected",
        "reason": "incident inc-1 is already resolved", "text": "", "system_id": None,
    }  # fmt: skip
    listed = await invoke(["audit"])
    assert "somchai [cli] incident.ack inc-1 (rejected: incident inc-1 is already resolved)" in listed.output


@pytest.mark.parametrize(
    ("args", "action", "event_type", "printed"),
    [
        (["ack", "inc-7"], "ack", "acknowledged", "acknowledged inc-7"),
        (["resolve", "inc-7", "--text", "restarted the web server"], "resolve", "resolved", "resolved inc-7"),
        (["note", "inc-7", "--text", "vendor is on site"], "note", "noted", "noted inc-7"),
        (
            ["open", "--text", "ผู้ใช้แจ้งว่าเข้าระบบไม่ได้", "--system", "e-service"],
            "open_manual",
            "opened",
            "opened man-1",
        ),
    ],
)
async def test_an_accepted_command_is_reported_by_its_derived_event_id(
    env: None,
    js: JetStreamContext,
    mongo_db: AsyncDatabase[Document],
    args: list[str],
    action: str,
    event_type: IncidentEventType,
    printed: str,
) -> None:
    incident_id = printed.split()[-1]

    async def accept(js: JetStreamContext, command: Command) -> None:
        await publish_event(js, event(uuid.uuid4(), event_type, "inc-other"))  # unrelated: ignored
        await publish_event(js, event(command_event_id(command.command_id), event_type, incident_id))

    responder = asyncio.create_task(respond(js, accept))
    result = await invoke(["incidents", *args])
    msg = await responder

    command = Command.model_validate_json(msg.data)
    assert msg.subject == s.command_subject(action)
    assert command.action == action
    assert command.actor == getpass.getuser(), "the login name when --as is not given"
    if "--text" in args:
        assert command.text == args[args.index("--text") + 1]
    if action == "open_manual":
        assert command.system_id == "e-service"
        assert command.incident_id is None
    assert result.exit_code == 0, result.output
    assert printed in result.output
    assert "inc-other" not in result.output
    (entry,) = await audited(mongo_db)
    assert (entry["action"], entry["outcome"], entry["incident_id"]) == (
        f"incident.{action}",
        "applied",
        incident_id,
    )
    assert entry["command_id"] == str(command.command_id)


async def test_no_answer_says_the_command_is_queued_and_exits_2(
    env: None, js: JetStreamContext, mongo_db: AsyncDatabase[Document]
) -> None:
    result = await invoke(["incidents", "note", "inc-1", "--text", "anyone?", "--wait", "0.5"])
    assert result.exit_code == 2, result.output
    (entry,) = await audited(mongo_db)
    assert (entry["action"], entry["outcome"], entry["text"]) == ("incident.note", "queued", "anyone?")
    assert "queued; the correlator did not answer within 0.5 s" in result.output
    info = await js.stream_info(s.COMMANDS_STREAM)
    assert info.state.messages == 1, "the command waits in the stream for the correlator"


async def test_a_negative_wait_or_a_limit_below_1_is_refused_and_nothing_is_sent(
    env: None, js: JetStreamContext
) -> None:
    """Was: --wait -1 sent the command and said "queued; ... within -1 s"; --limit 0 listed all."""
    negative = await invoke(["incidents", "ack", "inc-1", "--wait", "-1"])
    assert negative.exit_code == 2, negative.output
    assert "Invalid value for '--wait': -1.0 is not in the range x>=0." in negative.output
    assert (await js.stream_info(s.COMMANDS_STREAM)).state.messages == 0
    for args in (["incidents", "--limit", "0"], ["incidents", "list", "--all", "--limit", "-1"]):
        none = await invoke(args)
        assert none.exit_code == 2, (args, none.output)
        assert "Invalid value for '--limit'" in none.output


async def test_a_command_sent_while_mongodb_is_down_says_it_is_not_in_the_audit_log(
    env: None, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAO_MONGO_URL", f"mongodb://127.0.0.1:{free_port()}/")
    result = await invoke(["incidents", "note", "inc-1", "--text", "anyone?", "--wait", "0.2"])
    assert result.exit_code == 2, result.output
    assert "sent, but not written to the audit log: cannot reach MongoDB" in result.output
    assert "Traceback" not in result.output
    assert (await js.stream_info(s.COMMANDS_STREAM)).state.messages == 1


async def test_an_invalid_command_or_unreachable_nats_is_one_clear_line(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_system = await invoke(["incidents", "open", "--text", "down", "--system", "Not An Id"])
    assert bad_system.exit_code == 1
    assert "invalid command: system_id: String should match pattern" in bad_system.output
    empty = await invoke(["incidents", "open", "--text", ""])
    assert empty.exit_code == 1
    assert "open_manual needs the report text" in empty.output

    monkeypatch.setenv("FAO_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    unreachable = await invoke(["incidents", "ack", "inc-1"])
    assert unreachable.exit_code == 1
    assert "cannot reach NATS" in unreachable.output
    assert "Traceback" not in unreachable.output


def timeline_row(incident_id: str, system_id: str, minute: int, type_: str, actor: str, text: str = "",
                 parent: str | None = None) -> Document:  # fmt: skip
    return {
        "_id": str(uuid.uuid4()), "incident_id": incident_id, "parent_incident_id": parent,
        "system_id": system_id, "at": datetime(2026, 11, 25, 1, minute, tzinfo=UTC), "type": type_,
        "actor": actor, "text": text,
    }  # fmt: skip


async def test_show_prints_the_incident_and_its_timeline_with_suppressed_dependants(
    env: None, mongo_db: AsyncDatabase[Document]
) -> None:
    for system in (
        System(id="core-network", name="Core network", name_th="เครือข่ายหลัก", team="noc"),
        System(id="e-service", name="e-Service", name_th="ระบบบริการอิเล็กทรอนิกส์", team="apps",
               depends_on=["core-network"]),
    ):  # fmt: skip
        await mongo_db[SYSTEMS].insert_one(to_doc(system, system.id))
    incident = Incident(
        id="inc-net", system_id="core-network", status="acknowledged", title="core switch: timeout",
        started_at=datetime(2026, 11, 25, 1, 0, tzinfo=UTC), kind="outage", severity="critical",
        acknowledged_at=datetime(2026, 11, 25, 1, 5, tzinfo=UTC), acknowledged_by="line:somchai",
        dependants=["e-service"], alerted=True,
    )  # fmt: skip
    await mongo_db["incidents"].insert_one({"_id": incident.id, **incident.model_dump()})
    await mongo_db["incident_timeline"].insert_many(
        [
            timeline_row("inc-net", "core-network", 7, "noted", "cli:somchai", "vendor is on\nsite"),
            timeline_row("inc-net", "core-network", 0, "opened", "fao"),
            timeline_row("inc-web", "e-service", 2, "suppressed", "fao", parent="inc-net"),
            timeline_row("inc-net", "core-network", 5, "acknowledged", "line:somchai"),
            timeline_row("inc-other", "e-service", 3, "opened", "fao"),  # another incident: not shown
        ]
    )

    result = await invoke(["incidents", "show", "inc-net"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "inc-net  รับทราบแล้ว  เครือข่ายหลัก [core-network]"
    assert "ระบบล่ม (outage)" in result.output
    assert "เริ่ม: 25 พ.ย. 2569 08:00 น." in result.output
    assert "รับทราบ: 25 พ.ย. 2569 08:05 น. โดย line:somchai" in result.output
    assert "ระบบที่ได้รับผลกระทบ: ระบบบริการอิเล็กทรอนิกส์ [e-service]" in result.output
    start = lines.index("  ลำดับเหตุการณ์:")
    timeline = lines[start + 1 : lines.index("  การส่งข้อความ (deliveries): (ไม่มี)")]
    assert [row.split()[5] for row in timeline] == ["opened", "suppressed", "acknowledged", "noted"]
    assert "[ระบบบริการอิเล็กทรอนิกส์ [e-service], inc-web]" in timeline[1]
    assert "08:02 น." in timeline[1]
    assert timeline[3].endswith("cli:somchai  vendor is on site")
    assert "inc-other" not in result.output

    unknown = await invoke(["incidents", "show", "inc-nope"])
    assert unknown.exit_code == 1
    assert "no incident 'inc-nope'" in unknown.output


def cell_columns(row: str) -> list[int]:
    """The terminal column each cell of a table row starts at (cells are apart by 2+ spaces)."""
    return [display_width(row[: m.start()]) for m in re.finditer(r"\S+(?: \S+)*", row)]


async def test_show_prints_the_delivery_log_aligned_with_channel_target_attempts_outcome_and_cost(
    env: None, mongo_db: AsyncDatabase[Document]
) -> None:
    """Every delivery of the incident, as the notifier records them: LINE stopped by the monthly
    limit (with the cost the quota module stored), the e-mail that stood in for it, a group skipped
    as broken; columns aligned by what a terminal shows (Thai marks take no column), errors and
    fallbacks on the lines below their row; another incident's delivery is not shown."""
    incident = Incident(
        id="inc-quota", system_id="e-service", status="open", title="หน้าแรก: HTTP 503",
        started_at=datetime(2026, 11, 25, 1, 0, tzinfo=UTC), alerted=True,
    )  # fmt: skip
    await mongo_db["incidents"].insert_one({"_id": incident.id, **incident.model_dump()})
    event = IncidentEvent(event_id=uuid.uuid4(), type="opened", at=incident.started_at, incident=incident)
    message = render_event(event, None, load_catalogue("th"))
    store = DeliveryStore(mongo_db)
    group, broken, mail = "C" + "1" * 32, "C" + "f" * 32, "noc@example.go.th"
    line, _ = await store.record(event, group, message, NOW, cost=7)
    await store.finish(
        line, "quota_exhausted", NOW, error="LINE answered 429: You have reached your monthly limit."
    )
    await store.annotate(line, NOW, fell_back="line_monthly_limit")
    skipped, _ = await store.record(event, broken, message, NOW)
    await store.finish(skipped, "skipped_broken", NOW, attempted=False, error="target broken since 24 พ.ย.")
    fallback, _ = await store.record_message(
        claim_id(event.event_id, mail, "email"), event_id=str(event.event_id), incident_id=incident.id,
        event_type="opened", target=mail, message=message, at=event.at, now=NOW, channel="email",
        fallback_of=line.id, fallback_reason="line_monthly_limit",
    )  # fmt: skip
    await store.finish(fallback, "sent", NOW)
    other = event.model_copy(
        update={"event_id": uuid.uuid4(), "incident": incident.model_copy(update={"id": "inc-x"})}
    )
    await store.record(other, group, message, NOW)

    result = await invoke(["incidents", "show", "inc-quota"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("  การส่งข้อความ (deliveries):")
    header, *rest = lines[start + 1 :]
    rows = [row for row in rest if not row.lstrip().startswith("↳")]
    assert header.split() == ["เวลา", "ข้อความ", "ช่องทาง", "ปลายทาง", "ผล", "ครั้ง", "ค่าใช้จ่าย"]
    assert len(rows) == 3
    by_target = {row.split()[7]: row for row in rows}  # after the date (5 words), kind, channel
    assert set(by_target) == {group, broken, mail}
    assert "โควตา LINE หมด (quota_exhausted)" in by_target[group]
    assert by_target[group].split()[-2:] == ["1", "7"]  # attempts, cost
    assert "ข้าม ปลายทางใช้ไม่ได้ (skipped_broken)" in by_target[broken]
    assert by_target[broken].split()[-2:] == ["0", "-"]
    assert "ส่งแล้ว (sent)" in by_target[mail]
    assert by_target[mail].split()[6] == "email"
    # Aligned as displayed: every column starts at the same terminal column in every row.
    starts = {tuple(cell_columns(row)) for row in [header, *rows]}
    assert len(starts) == 1, starts
    assert len(next(iter(starts))) == 7
    assert f"ช่องทางสำรองแทน {line.id} (โควตา LINE หมด)" in result.output
    assert "ส่งทางช่องทางสำรองด้วย (โควตา LINE หมด)" in result.output
    assert "ข้อผิดพลาด: LINE answered 429: You have reached your monthly limit." in result.output
    assert "inc-x" not in result.output
