"""Channels end to end: real nats-server and FerretDB, the fake LINE API, a local SMTP server
(aiosmtpd) and a local webhook receiver (aiohttp), all on 127.0.0.1, driving notifier processes
served in-process (conftest's ``stack``).

What is pinned: LINE's monthly limit stops LINE for the month, falls back to e-mail and raises one
platform incident (across repeated 429s and a restart); a 500 then success is one LINE message and
no fallback; an invalid group is marked broken once with one notice and later incidents skip it
(a join recorded by the gateway heals it); N transient failures bring the e-mail fallback while
LINE keeps retrying; webhook bodies verify with the documented signature recipe; two notifiers
racing on one e-mail or webhook delivery send it once; an escalation step falls back too (a
person's push to their e-mail, a listed team's group to the team's e-mail).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase
from services.notifier.tests.stack import Stack

from fao.notifier.channels.monthly_limit import limit_until, month_key, quota_command_id
from fao.notifier.channels.registry import ChannelContext, ChannelRegistry
from fao.notifier.deliveries import DELIVERIES, DeliveryStore, claim_id
from fao.notifier.dispatcher import Notifier
from fao.notifier.render import load_catalogue, render_event
from fao.notifier.settings import NotifierSettings
from fao.notifier.targets import Target, TargetPlan, incident_summary
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import (
    Command,
    EscalationPolicy,
    Incident,
    IncidentEvent,
    Person,
    System,
    Team,
    WebhookTarget,
)
from fao.schemas import subjects as s
from fao.testing.fake_line import PUSH_PATH, FakeLineServer

MAIL_TO = "noc@example.go.th"
LEAD_MAIL = "somchai@example.go.th"
BOARD_MAIL = "board@example.go.th"
SECRET_ENV = "FAO_TEST_WEBHOOK_SECRET"
SECRET = "s3cr3t-ของทีม"


async def eventually(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


# --- a local SMTP server ------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the local SMTP server accepted; ``unknown`` mailboxes are refused with 550, ``hold``
    delays every DATA (to make two senders overlap)."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    hold: float = 0.0

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait(self, n: int, timeout: float = 15.0) -> list[EmailMessage]:  # noqa: ASYNC109
        async def arrived() -> bool:
            return len(self.messages) >= n

        await eventually(arrived, f"{n} e-mail(s) received (got {len(self.messages)})", timeout)
        return self.messages


class MailHandler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(  # noqa: N802  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.box.unknown:
            return f"550 5.1.1 <{address}>: mailbox unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.box.hold:
            await asyncio.sleep(self.box.hold)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.box.messages.append(message)
        return "250 OK: queued"


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    handler = MailHandler(box)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="mx.test", loop=loop), "127.0.0.1", 0)
    box.port = int(server.sockets[0].getsockname()[1])
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


# --- a local webhook receiver -------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Hooks:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hold: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        if self.hold:
            await asyncio.sleep(self.hold)
        status = self.statuses.pop(0) if self.statuses else 204
        return web.Response(status=status)


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    receiver = Hooks()
    app = web.Application()
    app.router.add_post("/fao", receiver.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/fao"
    try:
        yield receiver
    finally:
        await runner.cleanup()


# --- helpers ------------------------------------------------------------------------------------


async def add_team(stack: Stack, team: Team, *, system_id: str | None = None) -> None:
    system = System(id=system_id or stack.system_id, name="e-Gov Portal", name_th="พอร์ทัลภาครัฐ", team=team.id)
    await stack.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
    await stack.db[SYSTEMS].replace_one({"_id": system.id}, to_doc(system, system.id), upsert=True)


def mail_settings(stack: Stack, box: Mailbox, storm_budget: int = 0) -> NotifierSettings:
    """Settings with the local SMTP server; by default no storm digests (these tests send several
    incidents to one group within a minute, each of which must go out on its own)."""
    return stack.settings(
        smtp_host="127.0.0.1", smtp_port=box.port, smtp_starttls=False, smtp_from="fao@example.go.th",
        storm_budget=storm_budget, storm_window=5.0,
    )  # fmt: skip


def line_pushes(line: FakeLineServer, to: str | None = None) -> int:
    """Push requests that reached the fake LINE server (whatever it answered)."""
    return sum(
        1 for r in line.requests if r.path == PUSH_PATH and (to is None or (r.json or {}).get("to") == to)
    )


def incident(n: int) -> Incident:
    return Incident(
        id=f"inc-{n:020d}", system_id="egov-portal", severity="critical", status="open",
        title=f"หน้าแรก: HTTP 503 ({n})", started_at=datetime(2026, 11, 5, 7, n, tzinfo=UTC), alerted=True,
    )  # fmt: skip


async def commands(js: JetStreamContext) -> list[Command]:
    info = await js.stream_info(s.COMMANDS_STREAM)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(s.COMMANDS_STREAM, seq)
        assert msg.subject == s.command_subject("open_manual")
        assert msg.headers is not None
        command = Command.model_validate_json(msg.data or b"")
        assert msg.headers["Nats-Msg-Id"] == str(command.command_id)
        found.append(command)
    return found


# --- LINE's monthly limit -----------------------------------------------------------------------


async def test_monthly_limit_stops_line_for_the_month_falls_back_to_email_and_raises_one_incident(
    stack: Stack, mailbox: Mailbox
) -> None:
    """Both groups of the team get LINE's monthly-limit 429 → one e-mail per incident (not one per
    group), ``exhausted_until`` = the next month's start (Bangkok) in ``line_state``, and exactly
    one ``open_manual`` command for the platform on FAO_COMMANDS. Later incidents reach e-mail
    with no LINE request at all; after a restart and another "monthly limit" 429, still no second
    command."""
    await add_team(
        stack,
        Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[stack.group, stack.group_2], email=[MAIL_TO]),
    )
    stack.line.set_quota(0)
    running = await stack.start_notifier(mail_settings(stack, mailbox))

    first = stack.event("opened", incident(1))
    await stack.publish(first)
    [mail] = await mailbox.wait(1)
    await stack.quiet()
    assert mail["To"] == MAIL_TO
    assert "ระบบขัดข้อง" in str(mail["Subject"])
    tried = line_pushes(stack.line)
    assert 1 <= tried <= 2  # each group tried at most once
    for group in (stack.group, stack.group_2):
        doc = await stack.delivery(claim_id(first.event_id, group))
        assert doc["status"] == "quota_exhausted"
        assert doc["fell_back"] == "line_monthly_limit"
    state = await stack.db["line_state"].find_one({"_id": "quota"})
    assert state is not None
    until = limit_until(datetime.now(UTC))
    assert state["exhausted_until"] == until
    assert state.get("limit") == 0  # the quota module's figures live beside it
    [command] = await commands(stack.js)
    assert command.command_id == quota_command_id(month_key(until))
    assert (command.action, command.system_id, command.actor) == ("open_manual", None, "fao:notifier")
    assert "โควตาข้อความ LINE" in command.text

    second = stack.event("opened", incident(2))
    await stack.publish(second)
    await mailbox.wait(2)
    await stack.quiet()
    assert line_pushes(stack.line) == tried
    doc = await stack.delivery(claim_id(second.event_id, stack.group))
    assert (doc["status"], doc["attempts"]) == ("quota_exhausted", 0)

    # A restart, with the mark removed by hand although no messages were bought: LINE is tried
    # again, answers "monthly limit" again, and that is stored again — still one incident.
    await running.stop()
    await stack.db["line_state"].update_one({"_id": "quota"}, {"$unset": {"exhausted_until": ""}})
    await stack.start_notifier(mail_settings(stack, mailbox))
    third = stack.event("opened", incident(3))
    await stack.publish(third)
    await mailbox.wait(3)
    await stack.quiet()
    tried_again = line_pushes(stack.line)
    assert tried + 1 <= tried_again <= tried + 2
    state = await stack.db["line_state"].find_one({"_id": "quota"})
    assert state is not None
    assert state["exhausted_until"] == until
    fourth = stack.event("opened", incident(4))
    await stack.publish(fourth)
    await mailbox.wait(4)
    await stack.quiet()
    assert line_pushes(stack.line) == tried_again
    assert len(await commands(stack.js)) == 1
    assert len(mailbox.to(MAIL_TO)) == 4


async def test_rate_limit_429_is_retried_and_500_then_success_is_one_message_without_fallback(
    stack: Stack, mailbox: Mailbox
) -> None:
    """A 500 and then LINE's *rate-limit* 429 (not the monthly one) are transient: the same
    delivery goes through on its third try, exactly one LINE message, no e-mail, no limit stored."""
    await add_team(stack, Team(id="infra", name="Infra", line_groups=[stack.group], email=[MAIL_TO]))
    stack.line.fail_next(500)
    stack.line.fail_next(429)
    await stack.start_notifier(mail_settings(stack, mailbox))
    event = stack.event("opened", incident(4))
    await stack.publish(event)
    await stack.line.wait_for_pushes(1)
    await stack.quiet()
    assert len(stack.line.pushes_to(stack.group)) == 1
    assert line_pushes(stack.line) == 3
    doc = await stack.delivery(claim_id(event.event_id, stack.group))
    assert (doc["status"], doc["attempts"]) == ("sent", 3)
    assert "fell_back" not in doc
    assert await stack.db[DELIVERIES].count_documents({"channel": "email"}) == 0
    assert mailbox.messages == []
    assert "exhausted_until" not in (await stack.db["line_state"].find_one({"_id": "quota"}) or {})


async def test_while_line_is_exhausted_a_storm_does_not_hold_messages_back_from_email(
    stack: Stack, mailbox: Mailbox
) -> None:
    """One single per 5 s window (storm budget 1): once LINE's monthly limit is known, the next
    incident is not made a digest item waiting for the window's digest: it is recorded as itself
    and reaches e-mail at once."""
    await add_team(stack, Team(id="infra", name="Infra", line_groups=[stack.group], email=[MAIL_TO]))
    stack.line.set_quota(0)
    await stack.start_notifier(mail_settings(stack, mailbox, storm_budget=1))
    first = stack.event("opened", incident(14))
    await stack.publish(first)
    await mailbox.wait(1)
    second = stack.event("opened", incident(15))
    await stack.publish(second)
    await mailbox.wait(2)
    await stack.quiet()
    doc = await stack.delivery(claim_id(second.event_id, stack.group))
    assert (doc["status"], doc["fell_back"]) == ("quota_exhausted", "line_monthly_limit")
    assert "digest" not in doc
    assert line_pushes(stack.line) == 1


async def test_a_storm_digest_that_cannot_go_falls_back_as_one_digest(stack: Stack, mailbox: Mailbox) -> None:
    """Storm budget 1 per 5 s window and a group LINE refuses for good: the first incident is a
    single (400 → broken → e-mail); the second becomes a digest item; when the window's digest
    is due it skips the broken group and goes by e-mail as the digest (the team's plan)."""
    await add_team(stack, Team(id="infra", name="Infra", line_groups=[stack.unknown_group], email=[MAIL_TO]))
    await stack.start_notifier(mail_settings(stack, mailbox, storm_budget=1))
    first = stack.event("opened", incident(16))
    await stack.publish(first)
    await mailbox.wait(1)
    second = stack.event("opened", incident(17))
    await stack.publish(second)
    _, mail = await mailbox.wait(2)
    await stack.quiet()
    item = await stack.delivery(claim_id(second.event_id, stack.unknown_group))
    assert item["status"] == "digested"
    [digest] = await stack.db[DELIVERIES].find({"kind": "digest", "channel": "line"}).to_list()
    assert (digest["status"], digest["fell_back"]) == ("skipped_broken", "target_broken")
    fallback = await stack.delivery(claim_id(digest["event_id"], MAIL_TO, "email"))
    assert (fallback["status"], fallback["fallback_of"], fallback["kind"]) == (
        "sent",
        digest["_id"],
        "digest",
    )
    assert mail["X-Fao-Delivery"] == fallback["_id"]
    assert line_pushes(stack.line, stack.unknown_group) == 1


# --- escalations --------------------------------------------------------------------------------


async def test_an_escalation_while_line_is_exhausted_reaches_the_lead_by_email_and_nobody_twice(
    stack: Stack, mailbox: Mailbox
) -> None:
    """LINE's monthly limit reached and a step "at once → the lead, the director and the board
    team": the problem message falls back to the team's e-mail; the lead's escalation push falls
    back to the lead's own e-mail (the escalation text, recorded once, as a fallback of that push)
    and the board's group to the board's e-mail; the director, who has no e-mail, is not reached
    (the push final as quota_exhausted, nothing else recorded); nothing reaches LINE."""
    lead = Person(id="lead", name="สมชาย ใจดี", teams=["infra"], line_user_id="U" + "a" * 32, email=LEAD_MAIL)
    director = Person(id="director", name="ผู้อำนวยการ", line_user_id="U" + "d" * 32)
    for person in (lead, director):
        await stack.db[PEOPLE].replace_one({"_id": person.id}, to_doc(person, person.id), upsert=True)
    board = Team(id="board", name="ผู้บริหาร", line_groups=[stack.group_2], email=[BOARD_MAIL])
    await stack.db[TEAMS].replace_one({"_id": board.id}, to_doc(board, board.id), upsert=True)
    step = {"after": 0, "people": ["lead", "director"], "teams": ["board"]}
    policy = EscalationPolicy.model_validate({"steps": [step]})
    team = Team(id="infra", name="Infra", line_groups=[stack.group], email=[MAIL_TO], escalation=policy)
    await add_team(stack, team)
    stack.line.set_quota(0)
    await stack.start_notifier(mail_settings(stack, mailbox))
    outage = incident(18)
    await stack.db["incidents"].replace_one(
        {"_id": outage.id}, {"_id": outage.id, **outage.model_dump(mode="python")}, upsert=True
    )
    await stack.publish(stack.event("opened", outage))

    async def escalations_final() -> bool:
        docs = await stack.db[DELIVERIES].find({"event_type": "escalated"}).to_list()
        return len(docs) == 5 and all(d["status"] not in ("pending", "claimed") for d in docs)

    await eventually(escalations_final, "three escalation pushes and two e-mails, all final")
    await stack.quiet()
    [mail] = mailbox.to(LEAD_MAIL)
    assert "ยังไม่มีผู้รับทราบ" in str(mail["Subject"])
    assert len(mailbox.to(MAIL_TO)) == 1, "the team's e-mail got the problem message only"
    [board_mail] = mailbox.to(BOARD_MAIL)
    assert "ยังไม่มีผู้รับทราบ" in str(board_mail["Subject"])
    assert len(mailbox.messages) == 3
    pushes = {d["target"]: d for d in await stack.db[DELIVERIES].find({"event_type": "escalated"}).to_list()}
    to_lead, to_director, by_mail = (
        pushes[lead.line_user_id or ""],
        pushes[director.line_user_id or ""],
        pushes[LEAD_MAIL],
    )
    assert (to_lead["status"], to_lead["fell_back"]) == ("quota_exhausted", "line_monthly_limit")
    assert to_director["status"] == "quota_exhausted"
    assert "fell_back" not in to_director
    assert (by_mail["channel"], by_mail["status"], by_mail["fallback_of"]) == (
        "email",
        "sent",
        to_lead["_id"],
    )
    # this claim id is long enough for the header to be folded: compared unfolded
    assert str(mail["X-Fao-Delivery"]).strip() == by_mail["_id"]
    to_board = pushes[stack.group_2]
    assert (to_board["status"], to_board["fell_back"]) == ("quota_exhausted", "line_monthly_limit")
    assert pushes[BOARD_MAIL]["fallback_of"] == to_board["_id"]
    assert stack.line.pushes == []


# --- broken targets -----------------------------------------------------------------------------


async def test_invalid_group_is_marked_broken_once_and_later_incidents_go_straight_to_email(
    stack: Stack, mailbox: Mailbox
) -> None:
    """LINE's 400 "Failed to send messages" → ``broken_targets`` gets the group once and the
    platform team one notice, the message goes by e-mail; the next incidents skip the group (no
    LINE request) and go by e-mail at once. The gateway recording the bot's join heals it."""
    await add_team(
        stack, Team(id="ops", name="Ops", line_groups=[stack.group_2], platform=True), system_id="fao-app"
    )
    await add_team(stack, Team(id="infra", name="Infra", line_groups=[stack.unknown_group], email=[MAIL_TO]))
    await stack.start_notifier(mail_settings(stack, mailbox))

    first = stack.event("opened", incident(5))
    await stack.publish(first)
    await mailbox.wait(1)
    await stack.quiet()
    assert line_pushes(stack.line, stack.unknown_group) == 1
    doc = await stack.delivery(claim_id(first.event_id, stack.unknown_group))
    assert (doc["status"], doc["target_error"], doc["fell_back"]) == (
        "failed_permanent",
        True,
        "permanent_error",
    )
    [mark] = await stack.db["broken_targets"].find({}).to_list()
    assert (mark["_id"], mark["channel"], mark["team"]) == (f"line:{stack.unknown_group}", "line", "infra")
    assert "Failed to send messages" in mark["error"]

    for n in (6, 7):
        event = stack.event("opened", incident(n))
        await stack.publish(event)
        await mailbox.wait(n - 4)
        await stack.quiet()
        skipped = await stack.delivery(claim_id(event.event_id, stack.unknown_group))
        assert (skipped["status"], skipped["attempts"]) == ("skipped_broken", 0)
        fallback = await stack.delivery(claim_id(event.event_id, MAIL_TO, "email"))
        assert (fallback["status"], fallback["fallback_reason"]) == ("sent", "target_broken")
    assert line_pushes(stack.line, stack.unknown_group) == 1
    [notice] = await stack.db["outbox"].find({"kind": "target_broken"}).to_list()
    assert (notice["teams"], notice["broken_target"]) == (["ops"], stack.unknown_group)
    assert stack.unknown_group in notice["text"]
    assert await stack.db["broken_targets"].count_documents({}) == 1

    # The bot is invited back into the group: the gateway records the join; LINE knows it again.
    stack.line.add_group(stack.unknown_group, 5)
    await stack.db["line_groups"].insert_one(
        {"_id": stack.unknown_group, "in_group": True, "joined_at": datetime.now(UTC)}
    )
    healed = stack.event("opened", incident(8))
    await stack.publish(healed)
    await stack.line.wait_for_pushes(1)
    await stack.quiet()
    assert len(stack.line.pushes_to(stack.unknown_group)) == 1
    assert await stack.db["broken_targets"].count_documents({}) == 0
    assert len(mailbox.messages) == 3  # no fallback this time


async def test_after_n_transient_failures_email_is_sent_and_line_keeps_retrying_until_it_is_sent(
    stack: Stack, mailbox: Mailbox
) -> None:
    """``fallback_after: 2``: LINE failing with 500 → after the second failed try the e-mail goes
    out (once, however many more tries fail), while the LINE delivery stays ``claimed`` and is
    retried with its key; when LINE is back it is delivered too (one push), and the incident's
    end reaches both the group and the e-mail."""
    team = Team(
        id="infra", name="Infra", line_groups=[stack.group], email=[MAIL_TO],
        channels={"primary": "line", "fallbacks": ["email"], "fallback_after": 2},
    )  # fmt: skip
    await add_team(stack, team)
    stack.line.fail_next(500, count=None, to=stack.group)
    await stack.start_notifier(mail_settings(stack, mailbox))
    event = stack.event("opened", incident(9))
    await stack.publish(event)
    [mail] = await mailbox.wait(1)
    assert mail["X-Fao-Incident"] == event.incident.id
    claim = claim_id(event.event_id, stack.group)
    doc = await stack.wait_delivery_attempts(claim, 4)
    assert (doc["status"], doc["fell_back"]) == ("claimed", "failed_attempts")
    assert len(mailbox.messages) == 1

    stack.line.clear_faults()
    await stack.wait_delivery(claim, "sent")
    await stack.quiet()
    assert len(stack.line.pushes_to(stack.group)) == 1
    assert len(mailbox.messages) == 1
    fallback = await stack.delivery(claim_id(event.event_id, MAIL_TO, "email"))
    assert (fallback["fallback_of"], fallback["fallback_reason"]) == (claim, "failed_attempts")

    # LINE works again: "back to normal" goes to the group, and to the e-mail that said "down".
    resolved = stack.event("resolved", event.incident)
    await stack.publish(resolved)
    await stack.line.wait_for_pushes(2)
    _, fixed = await mailbox.wait(2)
    await stack.quiet()
    assert "กลับมาใช้งานได้ตามปกติ" in str(fixed["Subject"])
    follow = await stack.delivery(claim_id(resolved.event_id, MAIL_TO, "email"))
    assert (follow["status"], follow["fallback_reason"]) == ("sent", "follows_fallback")


# --- webhooks -----------------------------------------------------------------------------------


async def test_webhook_body_verifies_with_the_documented_signature_recipe(
    stack: Stack, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team whose primary channel is a webhook: one POST whose ``X-Fao-Signature`` is
    ``sha256=`` + hex HMAC-SHA256 of the raw body with the secret (the docs/contracts.md recipe),
    ``X-Fao-Delivery`` the delivery id, and the incident's essentials and the message in the body.
    A 503 first is retried (same delivery id); a tampered body would not verify."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hooks.statuses = [503]
    team = Team(
        id="infra", name="Infra", webhooks=[WebhookTarget(url=hooks.url, secret_env=SECRET_ENV)],
        channels={"primary": "webhook", "fallbacks": []},
    )  # fmt: skip
    await add_team(stack, team)
    await stack.start_notifier()
    event = stack.event("opened", incident(10))
    await stack.publish(event)
    await stack.quiet()
    assert len(hooks.received) == 2
    claim = claim_id(event.event_id, hooks.url, "webhook")
    for received in hooks.received:
        # The recipe in docs/contracts.md, verbatim:
        expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(received.headers["x-fao-signature"], expected)
        assert received.headers["x-fao-delivery"] == claim
        assert received.headers["content-type"] == "application/json"
        tampered = received.body.replace(b"503", b"504")
        assert not hmac.compare_digest(
            received.headers["x-fao-signature"],
            "sha256=" + hmac.new(SECRET.encode(), tampered, hashlib.sha256).hexdigest(),
        )
    body = json.loads(hooks.received[-1].body)
    assert (body["delivery_id"], body["event_id"], body["event_type"]) == (
        claim,
        str(event.event_id),
        "opened",
    )
    assert body["incident"]["id"] == event.incident.id
    assert body["incident"]["severity"] == "critical"
    assert body["message"]["kind"] == "problem"
    assert "ระบบขัดข้อง" in body["message"]["title"]
    assert (await stack.delivery(claim))["status"] == "sent"
    assert line_pushes(stack.line) == 0


# --- exclusive claims ---------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "webhook"])
async def test_two_notifiers_racing_on_one_email_or_webhook_delivery_send_it_once(
    db: AsyncDatabase[Document], mailbox: Mailbox, hooks: Hooks, channel: str
) -> None:
    """Two notifiers (two processes' worth of workers on one database) wake for the same pending
    e-mail (webhook) delivery at once; each send is slow, so both are at it together. Without the
    exclusive claim both would send; with it exactly one message arrives and the delivery is
    ``sent`` once, with one claim."""
    mailbox.hold = hooks.hold = 0.5
    settings = NotifierSettings(
        smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_starttls=False, smtp_from="fao@example.go.th"
    )
    catalogue = load_catalogue("th")
    event = IncidentEvent.model_validate(
        {"event_id": "6f1f0c4e-1b7a-4d0e-9a55-0c1d2e3f4a5b", "type": "opened", "at": incident(11).started_at,
         "incident": incident(11).model_dump()}
    )  # fmt: skip
    address = MAIL_TO if channel == "email" else hooks.url
    plan = TargetPlan(Target(channel, address), "infra", "v1")
    store = DeliveryStore(db)
    delivery, _ = await store.record(
        event, address, render_event(event, None, catalogue), datetime.now(UTC), channel,
        **plan.fields(), incident=incident_summary(event.incident),
    )  # fmt: skip
    notifiers = []
    for _ in range(2):
        registry = ChannelRegistry.builtin(ChannelContext(db, lambda: datetime.now(UTC), settings, None))
        notifier = Notifier(db, sender=None, catalogue=catalogue, channels=registry, sweep_interval=60.0)
        await registry.start()
        notifiers.append(notifier)
    try:
        for notifier in notifiers:
            notifier.workers.wake(address)

        async def sent() -> bool:
            doc = await db[DELIVERIES].find_one({"_id": delivery.id})
            return doc is not None and doc["status"] == "sent"

        await eventually(sent, "the delivery is sent")
        for notifier in notifiers:
            await notifier.workers.drain(5.0)
    finally:
        for notifier in notifiers:
            await notifier.channels.stop()
    arrived = len(mailbox.messages) if channel == "email" else len(hooks.received)
    assert arrived == 1
    assert await db["delivery_claims"].count_documents({"delivery": delivery.id}) == 1
