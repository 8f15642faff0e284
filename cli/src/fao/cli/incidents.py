"""``fao incidents``: what is broken now (or recently), one incident in detail with its timeline
and its delivery log, and commands to the correlator (acknowledge, resolve, note, open by hand)
with its answer. Each command sent is written to the audit log (source ``cli``) with the answer,
as the web face does for its commands."""

from __future__ import annotations

import asyncio
import getpass
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
from nats.aio.msg import Msg
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from fao.cli.nats_errors import quiet
from fao.runtime import audit
from fao.runtime.bus import ensure_streams
from fao.runtime.inventory import SYSTEMS, from_doc
from fao.runtime.store import Document, connect
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import (
    Command,
    CommandAction,
    CommandRejected,
    Incident,
    IncidentEvent,
    System,
    command_event_id,
    subjects,
)

STATUS_TH = {"open": "ขัดข้อง", "acknowledged": "รับทราบแล้ว", "resolved": "แก้ไขแล้ว"}


def format_line(incident: Incident, system: System | None, now: datetime) -> str:
    name = system.display_name_th if system else incident.system_id
    end = incident.resolved_at or now
    return (
        f"{incident.id}  {STATUS_TH[incident.status]:<12} {name} — {incident.title}  "
        f"เริ่ม {format_thai_datetime(incident.started_at)}  นาน {format_thai_duration(end - incident.started_at)}"
    )


async def list_incidents(
    mongo_url: str, mongo_db: str, now: datetime, show_all: bool, limit: int
) -> list[str]:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        query = {} if show_all else {"status": {"$ne": "resolved"}}
        docs = await db["incidents"].find(query).sort("started_at", -1).limit(limit).to_list()
        systems = {doc["_id"]: from_doc(System, doc) for doc in await db[SYSTEMS].find({}).to_list()}
    finally:
        await client.close()
    incidents = [from_doc(Incident, doc) for doc in docs]
    return [format_line(i, systems.get(i.system_id), now) for i in incidents]


# --- commands: ack, resolve, note, open ---------------------------------------------------------

ANSWER_TIMEOUT = 10.0
# How long the audit entry of a sent command waits for MongoDB (milliseconds).
AUDIT_WAIT_MS = 3000
# What a person reads when the correlator accepted a command, by the event type it produced (an
# ``open`` for a system that already has an open incident is ``noted`` on it).
DONE = {"acknowledged": "acknowledged", "resolved": "resolved", "noted": "noted", "opened": "opened"}


@dataclass(frozen=True)
class Accepted:
    event: IncidentEvent

    def describe(self) -> str:
        return f"{DONE.get(self.event.type, self.event.type)} {self.event.incident.id}"


@dataclass(frozen=True)
class Rejected:
    rejection: CommandRejected


Answer = Accepted | Rejected


def new_command(
    action: CommandAction,
    actor: str | None,
    *,
    incident_id: str | None = None,
    system_id: str | None = None,
    text: str = "",
    now: datetime | None = None,
) -> Command:
    """A command from this terminal: a fresh id, ``source="cli"``, the login name unless ``actor``."""
    return Command(
        command_id=uuid.uuid4(),
        action=action,
        actor=actor or getpass.getuser(),
        source="cli",
        at=now or datetime.now(UTC),
        incident_id=incident_id,
        system_id=system_id,
        text=text,
    )


def _answer(command: Command, subject: str, data: bytes) -> Answer | None:
    """The answer to ``command`` in one message, if it is one (others' traffic is skipped cheaply)."""
    if subject.startswith(subjects.COMMAND_OUTCOMES_SUBJECTS.removesuffix(">")):
        if str(command.command_id).encode() not in data:
            return None
        try:
            rejection = CommandRejected.model_validate_json(data)
        except ValidationError:
            return None
        return Rejected(rejection) if rejection.command_id == command.command_id else None
    event_id = command_event_id(command.command_id)
    if str(event_id).encode() not in data:
        return None
    try:
        event = IncidentEvent.model_validate_json(data)
    except ValidationError:
        return None
    return Accepted(event) if event.event_id == event_id else None


async def record_command(mongo_url: str, mongo_db: str, command: Command, answer: Answer | None) -> None:
    """The audit entry of a command sent from this terminal, with the correlator's answer
    (``applied``, ``rejected`` with its reason, or ``queued``: no answer yet)."""
    incident_id: str | None = command.incident_id
    if isinstance(answer, Accepted):
        outcome, reason, incident_id = "applied", "", answer.event.incident.id
    elif isinstance(answer, Rejected):
        outcome, reason = "rejected", answer.rejection.reason
    else:
        outcome, reason = "queued", ""
    # The command is sent already: a MongoDB that is down costs seconds, not pymongo's 30.
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, appname="fao", serverSelectionTimeoutMS=AUDIT_WAIT_MS
    )
    try:
        await audit.record(
            client[mongo_db],
            audit.entry(
                at=command.at, actor=command.actor, source="cli", action=f"incident.{command.action}",
                incident_id=incident_id, command_id=str(command.command_id), outcome=outcome,
                reason=reason, text=command.text, system_id=command.system_id,
            ),
        )  # fmt: skip
    finally:
        await client.close()


async def send_command(nats_url: str, command: Command, timeout: float = ANSWER_TIMEOUT) -> Answer | None:  # noqa: ASYNC109
    """Publish ``command`` to the commands stream and wait up to ``timeout`` seconds for the
    correlator's answer: the incident event it produced, or its rejection. None: no answer yet
    (the command stays queued in the stream and is applied when the correlator gets to it)."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2, error_cb=quiet)
    try:
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        async def on_message(msg: Msg) -> None:
            answer = _answer(command, msg.subject, msg.data)
            if answer is not None and not answered.done():
                answered.set_result(answer)

        # Listen before publishing, so a fast answer cannot be missed.
        await nc.subscribe(subjects.INCIDENTS_SUBJECTS, cb=on_message)
        await nc.subscribe(subjects.COMMAND_OUTCOMES_SUBJECTS, cb=on_message)
        await nc.flush()
        js = nc.jetstream()
        await ensure_streams(js)
        await js.publish(
            subjects.command_subject(command.action),
            command.model_dump_json().encode(),
            stream=subjects.COMMANDS_STREAM,
            headers={"Nats-Msg-Id": str(command.command_id)},
        )
        try:
            return await asyncio.wait_for(answered, timeout)
        except TimeoutError:
            return None
    finally:
        await nc.close()


# --- show: one incident and its timeline --------------------------------------------------------

TIMELINE = "incident_timeline"  # written by the correlator
KIND_TH = {
    "outage": "ระบบล่ม",
    "flapping": "ไม่เสถียร",
    "zone": "ปัญหาเฉพาะโซน",
    "prober_silent": "จุดตรวจไม่รายงานผล",
    "manual": "แจ้งโดยเจ้าหน้าที่",
    "slow": "ตอบสนองช้า",
    "expiring": "ใบรับรองใกล้หมดอายุ",
}
MUTED_TH = {"dependency": "ระบบที่พึ่งพาขัดข้อง", "maintenance": "ช่วงบำรุงรักษา"}


class UnknownIncidentError(LookupError):
    pass


def _system_name(system_id: str, systems: dict[str, System]) -> str:
    system = systems.get(system_id)
    return f"{system.display_name_th} [{system_id}]" if system else system_id


def format_incident(
    incident: Incident, timeline: list[Document], systems: dict[str, System], now: datetime
) -> list[str]:
    """The lines ``fao incidents show`` prints: the incident, then its timeline oldest first
    (entries of dependants suppressed under it name their own system)."""
    end = incident.resolved_at or now
    lines = [
        f"{incident.id}  {STATUS_TH[incident.status]}  {_system_name(incident.system_id, systems)}",
        f"  หัวข้อ: {incident.title}",
        f"  ประเภท: {KIND_TH.get(incident.kind, incident.kind)} ({incident.kind}), ความรุนแรง {incident.severity}",
        f"  เริ่ม: {format_thai_datetime(incident.started_at)}  นาน {format_thai_duration(end - incident.started_at)}",
    ]
    if incident.cause and incident.cause != incident.title:
        lines.append(f"  สาเหตุ: {incident.cause}")
    if incident.acknowledged_at is not None:
        lines.append(
            f"  รับทราบ: {format_thai_datetime(incident.acknowledged_at)} โดย {incident.acknowledged_by or '-'}"
        )
    if incident.resolved_at is not None:
        lines.append(
            f"  แก้ไขแล้ว: {format_thai_datetime(incident.resolved_at)} โดย {incident.resolved_by or '-'}"
        )
    if incident.muted is not None:
        lines.append(f"  ไม่แจ้งเตือน: {MUTED_TH.get(incident.muted, incident.muted)}")
    if incident.parent_incident_id:
        lines.append(f"  อยู่ภายใต้: {incident.parent_incident_id}")
    if incident.dependants:
        names = ", ".join(_system_name(s, systems) for s in incident.dependants)
        lines.append(f"  ระบบที่ได้รับผลกระทบ: {names}")
    if incident.monitor_ids:
        lines.append(f"  monitors: {', '.join(incident.monitor_ids)}")
    lines.append("  ลำดับเหตุการณ์:" if timeline else "  ลำดับเหตุการณ์: (ไม่มี)")
    for entry in timeline:
        row = f"    {format_thai_datetime(entry['at'])}  {entry.get('type', '?'):<12} {entry.get('actor') or 'fao'}"
        if entry.get("incident_id") != incident.id:
            row += (
                f"  [{_system_name(str(entry.get('system_id', '?')), systems)}, {entry.get('incident_id')}]"
            )
        if entry.get("text"):
            row += f"  {' '.join(str(entry['text']).split())}"
        lines.append(row)
    return lines


# --- show: the delivery log ----------------------------------------------------------------------

DELIVERIES = "deliveries"  # written by the notifier
OUTCOME_TH = {
    "pending": "รอส่ง",
    "claimed": "กำลังส่ง",
    "sent": "ส่งแล้ว",
    "outbox": "เก็บใน outbox",
    "failed_permanent": "ส่งไม่สำเร็จ",
    "superseded": "ไม่ต้องส่งแล้ว",
    "unroutable": "ไม่มีปลายทาง",
    "skipped_broken": "ข้าม ปลายทางใช้ไม่ได้",
    "quota_exhausted": "โควตา LINE หมด",
    "digested": "รวมในข้อความสรุป",
}
FALLBACK_TH = {
    "failed_attempts": "ส่งไม่สำเร็จหลายครั้ง",
    "permanent_error": "ส่งไม่ได้",
    "target_broken": "ปลายทางใช้ไม่ได้",
    "line_monthly_limit": "โควตา LINE หมด",
    "gave_up": "เลิกส่ง",
}
DELIVERY_HEADER: tuple[str, ...] = ("เวลา", "ข้อความ", "ช่องทาง", "ปลายทาง", "ผล", "ครั้ง", "ค่าใช้จ่าย")


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: Thai vowel and tone marks above or below a letter
    take none, wide characters (emoji, CJK) two."""
    width = 0
    for char in text:
        if unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def format_deliveries(deliveries: list[Document]) -> list[str]:
    """The "Deliveries" section of ``fao incidents show``: one aligned row per delivery (channel,
    target, attempts, outcome, cost when the notifier knew it), oldest first, with its error and
    what it stood in for (a fallback) on the lines below it."""
    if not deliveries:
        return ["  การส่งข้อความ (deliveries): (ไม่มี)"]
    rows: list[tuple[tuple[str, ...], list[str]]] = []
    for doc in deliveries:
        status = str(doc.get("status") or "?")
        at = doc.get("at") or doc.get("created_at")
        cost = doc.get("cost")
        row: tuple[str, ...] = (
            format_thai_datetime(at) if isinstance(at, datetime) else "-",
            str(doc.get("kind") or "-"),
            str(doc.get("channel") or "-"),
            str(doc.get("target") or "-"),
            f"{OUTCOME_TH.get(status, status)} ({status})",
            str(int(doc.get("attempts") or 0)),
            str(cost) if cost is not None else "-",
        )
        notes: list[str] = []
        if doc.get("fallback_of"):
            reason = str(doc.get("fallback_reason") or "")
            notes.append(f"ช่องทางสำรองแทน {doc['fallback_of']} ({FALLBACK_TH.get(reason, reason)})")
        if doc.get("fell_back"):
            reason = str(doc["fell_back"])
            notes.append(f"ส่งทางช่องทางสำรองด้วย ({FALLBACK_TH.get(reason, reason)})")
        error = doc.get("error") or doc.get("last_error")
        if error:
            notes.append(f"ข้อผิดพลาด: {' '.join(str(error).split())}")
        rows.append((row, notes))
    widths = [
        max(display_width(cells[i]) for cells in [DELIVERY_HEADER, *(row for row, _ in rows)])
        for i in range(len(DELIVERY_HEADER))
    ]

    def line(cells: tuple[str, ...]) -> str:
        return ("    " + "  ".join(_pad(cell, widths[i]) for i, cell in enumerate(cells))).rstrip()

    lines = ["  การส่งข้อความ (deliveries):", line(DELIVERY_HEADER)]
    for row, notes in rows:
        lines.append(line(row))
        lines.extend(f"      ↳ {note}" for note in notes)
    return lines


async def show_incident(mongo_url: str, mongo_db: str, incident_id: str, now: datetime) -> list[str]:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        doc = await db["incidents"].find_one({"_id": incident_id})
        if doc is None:
            raise UnknownIncidentError(f"no incident {incident_id!r} (see fao incidents --all)")
        query = {"$or": [{"incident_id": incident_id}, {"parent_incident_id": incident_id}]}
        timeline = await db[TIMELINE].find(query).sort("at", 1).to_list()
        systems = {d["_id"]: from_doc(System, d) for d in await db[SYSTEMS].find({}).to_list()}
        deliveries = await db[DELIVERIES].find({"incident_id": incident_id}).to_list()
    finally:
        await client.close()
    deliveries.sort(key=lambda d: (d.get("created_at") or now, str(d.get("_id"))))
    return [*format_incident(from_doc(Incident, doc), timeline, systems, now), *format_deliveries(deliveries)]
