"""Channels in parts: how each channel classifies answers, what the e-mail looks like, the monthly
limit's month boundary, routing to per-channel targets, and the exclusive claims on real FerretDB."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import ssl
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from linebot.v3.messaging import ApiException
from multidict import CIMultiDict, CIMultiDictProxy
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.broken import BrokenMark, BrokenTargets
from fao.notifier.channels.contract import Outgoing
from fao.notifier.channels.email import EmailChannel, build_email, classify_smtp_error, message_id
from fao.notifier.channels.monthly_limit import MonthlyLimit, limit_until, month_key, quota_command_id
from fao.notifier.channels.webhook import classify_status, signature, webhook_body
from fao.notifier.claims import ClaimStore
from fao.notifier.deliveries import Delivery
from fao.notifier.errors import DeliveryError, MonthlyLimitError
from fao.notifier.line_channel import classify_api_error
from fao.notifier.notices import load_notices
from fao.notifier.render import RenderedMessage
from fao.notifier.routing import RouteResolver
from fao.notifier.targets import Target, TargetPlan
from fao.runtime.store import Document
from fao.schemas import Command, Team, WebhookTarget
from fao.testing.fake_line import FAILED_TO_SEND, MONTHLY_LIMIT, RATE_LIMITED

NOW = datetime(2026, 11, 5, 7, 3, tzinfo=UTC)
GROUP = "C" + "1" * 32


def outgoing(delivery_id: str = "ev-1:email:noc@example.go.th") -> Outgoing:
    message = RenderedMessage(
        kind="problem",
        alt_text="🔴 ระบบขัดข้อง: พอร์ทัลบริการภาครัฐ — หน้าแรก: HTTP 503 (เริ่ม 5 พ.ย. 2569 14:03 น.)",
        text="🔴 ระบบขัดข้อง\nระบบ: พอร์ทัลบริการภาครัฐ\nสาเหตุ: HTTP 503",
        bubble=None,
    )
    return Outgoing(
        delivery_id=delivery_id, event_id="ev-1", event_type="opened", incident_id="inc-1", at=NOW,
        message=message, incident={"id": "inc-1", "system_id": "egov-portal", "severity": "critical"},
    )  # fmt: skip


# --- LINE -------------------------------------------------------------------------------------


def api_error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="reason")
    exc.body = json.dumps({"message": message})
    exc.headers = CIMultiDictProxy(CIMultiDict({"x-line-request-id": "req-1"}))
    return exc


def test_line_monthly_limit_429_is_not_this_month_and_the_rate_limit_429_stays_transient() -> None:
    """Only LINE's "You have reached your monthly limit." means no LINE until next month; the
    rate-limit 429 is retried like a 500."""
    monthly = classify_api_error(api_error(429, MONTHLY_LIMIT), now=NOW)
    assert isinstance(monthly, MonthlyLimitError)
    assert (monthly.permanent, monthly.fresh, monthly.status) == (True, True, 429)
    assert monthly.until == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 1 Dec 00:00 Bangkok
    rate = classify_api_error(api_error(429, RATE_LIMITED), now=NOW)
    assert isinstance(rate, DeliveryError)
    assert not isinstance(rate, MonthlyLimitError)
    assert rate.permanent is False


def test_line_400_failed_to_send_is_a_bad_target_and_other_400s_are_bad_messages() -> None:
    gone = classify_api_error(api_error(400, FAILED_TO_SEND))
    assert isinstance(gone, DeliveryError)
    assert (gone.permanent, gone.target) == (True, True)
    invalid = classify_api_error(api_error(400, "The request body has 1 error(s)"))
    assert isinstance(invalid, DeliveryError)
    assert (invalid.permanent, invalid.target) == (True, False)


@pytest.mark.parametrize(
    ("now", "until", "month"),
    [
        (datetime(2026, 11, 30, 16, 59, tzinfo=UTC), datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "2026-11"),
        # 1 Dec 00:30 in Bangkok is December already: the limit lasts until 1 Jan.
        (datetime(2026, 11, 30, 17, 30, tzinfo=UTC), datetime(2026, 12, 31, 17, 0, tzinfo=UTC), "2026-12"),
        (datetime(2027, 1, 15, 3, 0, tzinfo=UTC), datetime(2027, 1, 31, 17, 0, tzinfo=UTC), "2027-01"),
    ],
)
def test_monthly_limit_lasts_until_the_next_bangkok_month(now: datetime, until: datetime, month: str) -> None:
    assert limit_until(now) == until
    assert month_key(until) == month
    assert quota_command_id(month) == quota_command_id(month_key(limit_until(now)))
    assert quota_command_id("2026-11") != quota_command_id("2026-12")


# --- e-mail -----------------------------------------------------------------------------------


def test_email_has_the_thai_alt_text_as_subject_the_text_as_utf8_body_and_a_deterministic_message_id() -> (
    None
):
    message = outgoing()
    mail = build_email(message, sender="fao@example.go.th", recipient="noc@example.go.th", now=NOW)
    raw = mail.as_bytes()
    assert all(byte < 128 for byte in raw.split(b"\r\n\r\n", 1)[0])  # headers are 7-bit (RFC 2047)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == message.message.alt_text
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert (
        parsed.get_content().replace("\r\n", "\n").rstrip("\n") == message.message.text
    )  # SMTP lines end CRLF
    assert parsed["Message-ID"] == message_id(message.delivery_id, "fao@example.go.th")
    assert parsed["Message-ID"].endswith("@example.go.th>")
    assert message_id(message.delivery_id, "fao@example.go.th") != message_id(
        "ev-2:email:x@y.z", "fao@example.go.th"
    )
    assert (parsed["X-Fao-Delivery"], parsed["X-Fao-Incident"]) == (message.delivery_id, "inc-1")
    assert parsed["Date"] is not None


@pytest.mark.parametrize(
    ("error", "permanent", "target"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown", "x@y.z")]
            ),
            True,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(553, "bad name", "x@y.z")]),
            True,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(552, "full", "x@y.z")]),
            True,
            False,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "busy", "x@y.z")]),
            False,
            False,
        ),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), True, False),
        (aiosmtplib.SMTPSenderRefused(550, "not allowed", "fao@example.go.th"), True, False),
        (aiosmtplib.SMTPDataError(451, "try later"), False, False),
        (aiosmtplib.SMTPServerDisconnected("gone"), False, False),
        (aiosmtplib.SMTPConnectError("refused"), False, False),
        (aiosmtplib.SMTPReadTimeoutError("slow"), False, False),
        (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), True, False),
    ],
)
def test_smtp_answers_are_classified(error: BaseException, permanent: bool, target: bool) -> None:
    """Unknown mailboxes (550/551/553 on RCPT) are bad targets; other 5xx and configuration
    errors are permanent; 4xx, timeouts and lost connections are transient."""
    classified = classify_smtp_error(error)
    assert (classified.permanent, classified.target) == (permanent, target)


# --- webhook ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None), (202, None), (204, None),
        (404, "target"), (410, "target"),
        (400, "permanent"), (401, "permanent"), (403, "permanent"), (422, "permanent"),
        (408, "transient"), (429, "transient"), (301, "transient"), (500, "transient"), (503, "transient"),
    ],
)  # fmt: skip
def test_webhook_statuses_are_classified(status: int, outcome: str | None) -> None:
    error = classify_status(status, "reason")
    if outcome is None:
        assert error is None
        return
    assert error is not None
    assert (error.permanent, error.target) == (outcome != "transient", outcome == "target")


def test_webhook_body_is_utf8_json_with_the_incident_and_the_message() -> None:
    message = outgoing("ev-1:webhook:https://hooks.example.go.th/fao")
    body = webhook_body(message, NOW + timedelta(seconds=3))
    assert "ระบบขัดข้อง".encode() in body  # not \\u-escaped
    payload: dict[str, Any] = json.loads(body)
    assert payload == {
        "schema_version": 1,
        "delivery_id": "ev-1:webhook:https://hooks.example.go.th/fao",
        "event_id": "ev-1",
        "event_type": "opened",
        "at": NOW.isoformat(),
        "incident": {"id": "inc-1", "system_id": "egov-portal", "severity": "critical"},
        "message": {"kind": "problem", "title": message.message.alt_text, "text": message.message.text},
        "sent_at": (NOW + timedelta(seconds=3)).isoformat(),
    }
    assert signature(b"k", body) == signature(b"k", body)
    assert signature(b"k", body) != signature(b"other", body)
    assert signature(b"k", body).startswith("sha256=")


# --- notices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["th", "en"])
def test_notice_catalogues_load_and_fill_every_placeholder(language: Any) -> None:
    notices = load_notices(language)
    text = notices.broken(channel="line", target=GROUP, team="infra", error="LINE answered 400", since=NOW)
    assert GROUP in text
    assert "infra" in text
    assert "{" not in text
    assert "{" not in notices.quota_exhausted(limit_until(NOW))


# --- routing ----------------------------------------------------------------------------------


def test_a_team_routes_to_its_primary_channel_with_the_other_channels_as_fallbacks() -> None:
    team = Team(
        id="infra", name="Infra", line_groups=[GROUP], email=["noc@example.go.th"],
        webhooks=[WebhookTarget(url="https://hooks.example.go.th/fao", secret_env="HOOK_SECRET")],
    )  # fmt: skip
    resolver = RouteResolver(db=None)  # type: ignore[arg-type]  # team_plans reads no collection
    [plan] = resolver.team_plans(team)
    assert plan.target == Target("line", GROUP)
    assert plan.fallbacks == (
        Target("email", "noc@example.go.th"),
        Target("webhook", "https://hooks.example.go.th/fao", {"secret_env": "HOOK_SECRET"}),
    )
    assert plan.fallback_after == 3
    assert TargetPlan.from_doc({"channel": "line", "target": GROUP, **plan.fields()}) == plan


def test_an_unconfigured_channel_is_skipped_and_the_next_one_becomes_primary() -> None:
    """No SMTP host: e-mail targets are skipped; a team whose primary is e-mail and that also has
    a webhook then gets the webhook; a team with only e-mail has no target at all."""
    resolver = RouteResolver(db=None, configured={"line", "webhook"})  # type: ignore[arg-type]
    team = Team(
        id="mail-first", name="Mail first", email=["noc@example.go.th"],
        webhooks=[WebhookTarget(url="https://hooks.example.go.th/fao")], line_groups=[GROUP],
        channels={"primary": "email", "fallbacks": ["webhook", "line"], "fallback_after": 1},
    )  # fmt: skip
    [plan] = resolver.team_plans(team)
    assert (plan.target, plan.fallbacks, plan.fallback_after) == (
        Target("webhook", "https://hooks.example.go.th/fao"), (Target("line", GROUP),), 1,
    )  # fmt: skip
    assert resolver.team_plans(Team(id="mail-only", name="Mail only", email=["noc@example.go.th"])) == ()


# --- exclusive claims -------------------------------------------------------------------------


async def test_claims_give_each_attempt_one_sender_and_the_next_only_after_a_failure_or_a_stale_one(
    db: AsyncDatabase[Document],
) -> None:
    claims = ClaimStore(db, holder="a")
    other = ClaimStore(db, holder="b")
    delivery = f"{uuid.uuid4()}:email:noc@example.go.th"
    results = await asyncio.gather(*(store.acquire(delivery, 0, NOW, 30.0) for store in [claims, other] * 5))
    assert sorted(results, key=str) == [1] + ["busy"] * 9  # ten racing senders, one winner
    assert await other.acquire(delivery, 0, NOW, 30.0) == "busy"  # attempt 1 is still in progress
    await claims.failed(delivery, 1, "451 try later", NOW)
    assert await other.acquire(delivery, 0, NOW, 30.0) == 2  # 1 failed: 2 may go (hint 0 or not)
    assert await claims.acquire(delivery, 1, NOW + timedelta(seconds=10), 30.0) == "busy"
    # Attempt 2's sender died: after stale_after the next attempt may go.
    assert await claims.acquire(delivery, 1, NOW + timedelta(seconds=31), 30.0) == 3
    # Attempt 3 went through: a sender that read the delivery before it was final sends nothing.
    await claims.sent(delivery, 3, NOW + timedelta(seconds=32))
    assert await other.acquire(delivery, 0, NOW + timedelta(hours=1), 30.0) == "sent"
    docs = await db["delivery_claims"].find({"delivery": delivery}).sort("n", 1).to_list()
    assert [(d["n"], d["holder"], d.get("outcome")) for d in docs] == [
        (1, docs[0]["holder"], "failed"),
        (2, "b", None),
        (3, "a", "sent"),
    ]


# --- e-mail over STARTTLS against a real SMTP server ---------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl, as an operator would make one for a test relay)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[bool, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802  # aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.messages.append((session.ssl is not None, raw))
        return "250 OK"


async def smtp_server(handler: Collect, tls: ssl.SSLContext | None) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler, hostname="mx.test", tls_context=tls, require_starttls=tls is not None, loop=loop
        ),
        "127.0.0.1",
        0,
    )
    return server, int(server.sockets[0].getsockname()[1])


async def test_email_goes_over_starttls_trusting_the_configured_ca_and_a_server_without_tls_is_refused(
    tmp_path: Path,
) -> None:
    """STARTTLS is required by default: with ``FAO_SMTP_CA_FILE`` naming the relay's CA the e-mail
    is delivered encrypted; a relay that offers no STARTTLS is a permanent (configuration) error,
    never a plain-text send."""
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    handler = Collect()
    server, port = await smtp_server(handler, tls)
    plain, plain_port = await smtp_server(Collect(), None)
    try:
        channel = EmailChannel(
            host="127.0.0.1",
            port=port,
            sender="fao@example.go.th",
            clock=lambda: NOW,
            ca_file=cert,
            timeout=10,
        )
        receipt = await channel.send("noc@example.go.th", outgoing(), "key")
        [(encrypted, raw)] = handler.messages
        assert encrypted
        assert receipt.request_id == message_id(outgoing().delivery_id, "fao@example.go.th")
        assert b"Subject: =?utf-8?" in raw
        no_tls = EmailChannel(
            host="127.0.0.1", port=plain_port, sender="fao@example.go.th", clock=lambda: NOW
        )
        with pytest.raises(DeliveryError) as refused:
            await no_tls.send("noc@example.go.th", outgoing(), "key")
        assert (refused.value.permanent, refused.value.target) == (True, False)
    finally:
        for srv in (server, plain):
            srv.close()
            await srv.wait_closed()


async def test_the_monthly_limit_incident_is_published_once_even_when_the_first_publish_fails(
    db: AsyncDatabase[Document],
) -> None:
    """NATS away when LINE says "monthly limit": the deliveries still fall back (no exception
    from the limit), and the next LINE delivery publishes the incident; later ones and a
    restarted notifier do not publish it again."""
    published: list[Command] = []
    failures = [ConnectionError("nats away")]

    async def publish(command: Command) -> None:
        if failures:
            raise failures.pop()
        published.append(command)

    def make() -> MonthlyLimit:
        return MonthlyLimit(db, report=load_notices("th").quota_exhausted, publish=publish, clock=lambda: NOW)

    limit = make()
    await limit.load()
    await limit.check()  # nothing known yet: LINE may be tried
    error = MonthlyLimitError("LINE answered 429", until=limit_until(NOW), fresh=True)
    await limit.reached(error)
    assert published == []
    for _ in range(2):
        with pytest.raises(MonthlyLimitError) as known:
            await limit.check()
        assert (known.value.fresh, known.value.until) == (False, limit_until(NOW))
    [command] = published
    assert command.command_id == quota_command_id("2026-11")
    restarted = make()
    await restarted.load()
    with pytest.raises(MonthlyLimitError):
        await restarted.check()
    assert len(published) == 1
    state = await db["line_state"].find_one({"_id": "quota"})
    assert state is not None
    assert state["exhausted_until"] == limit_until(NOW)


# --- broken targets ---------------------------------------------------------------------------


def line_delivery(team_version: str) -> Delivery:
    plan = TargetPlan(Target("line", GROUP), "infra", team_version, (Target("email", "noc@example.go.th"),))
    return Delivery(
        id=f"ev-1:line:{GROUP}", event_id="ev-1", incident_id="inc-1", event_type="opened", channel="line",
        target=GROUP, retry_key="k", status="claimed", kind="problem", at=NOW, created_at=NOW, plan=plan,
    )  # fmt: skip


async def test_a_broken_target_is_marked_and_told_once_and_heals_when_the_team_changes_or_a_send_works(
    db: AsyncDatabase[Document],
) -> None:
    told: list[BrokenMark] = []

    async def notify(mark: BrokenMark) -> None:
        told.append(mark)

    broken = BrokenTargets(db, notify=notify)
    delivery = line_delivery("v1")
    assert await broken.check(delivery) is None
    assert [
        await broken.mark(delivery, "LINE answered 400: Failed to send messages", NOW) for _ in range(3)
    ] == [
        True,
        False,
        False,
    ]
    assert [(m.channel, m.target, m.team, m.team_version) for m in told] == [("line", GROUP, "infra", "v1")]
    mark = await broken.check(delivery)
    assert mark is not None
    assert mark.since == NOW
    # fao apply changed the team: a delivery routed under the new version tries the group again.
    assert await broken.check(line_delivery("v2")) is None
    assert await db["broken_targets"].count_documents({}) == 0
    # Broken again (a new period, told again); a send that works heals it.
    assert await broken.mark(line_delivery("v2"), "LINE answered 400: Failed to send messages", NOW) is True
    assert len(told) == 2
    await broken.sent("line", GROUP)
    assert await db["broken_targets"].count_documents({}) == 0
    assert await broken.check(line_delivery("v2")) is None
