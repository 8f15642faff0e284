"""The gateway's pure parts: the signature, reading webhook bodies and postback data, references,
who may act, the Thai catalogue."""

from __future__ import annotations

import json
import uuid

import pytest
from linebot.v3 import SignatureValidator
from services.gateway.tests.stack import GROUP, MEMBER

from fao.gateway.commands import command_id, reference
from fao.gateway.events import MalformedWebhookError, parse_webhook
from fao.gateway.membership import display_actor, may_act, owning_teams
from fao.gateway.postback import IncidentAction, SystemPick, parse_postback, pick_data
from fao.gateway.replies import load_replies
from fao.gateway.signature import sign, valid_signature
from fao.schemas import Incident, Person, System, Team
from fao.testing.fake_line import join_event, message_event, postback_event, sign_webhook, webhook_body

REPLIES = load_replies()


def test_the_signature_is_lines_hmac_of_the_raw_body() -> None:
    body = webhook_body([join_event(GROUP)])
    assert sign(body, "secret") == sign_webhook(body, "secret"), "the same as the fake LINE (and LINE) signs"
    # LINE's own SDK, an oracle independent of Fao's code, accepts that signature
    assert SignatureValidator("secret").validate(body.decode(), sign_webhook(body, "secret"))
    assert valid_signature(body, sign(body, "secret"), "secret")
    assert not valid_signature(body, sign(body, "other"), "secret")
    assert not valid_signature(body + b" ", sign(body, "secret"), "secret"), "the raw bytes, not the JSON"
    assert not valid_signature(body, None, "secret")
    assert not valid_signature(body, "", "secret")
    assert not valid_signature(body, "ไม่ใช่ลายเซ็น", "secret"), "a non-ASCII header is just wrong"


def test_a_webhook_is_read_tolerantly_and_its_events_sorted_by_time() -> None:
    late = postback_event("action=ack&incident=inc-1", group_id=GROUP, user_id=MEMBER)
    early = message_event("สวัสดี", user_id=MEMBER)
    early["timestamp"] = late["timestamp"] - 1000
    broken = [{"type": "join"}, {"webhookEventId": "x y", "type": "join", "timestamp": 1}, "not an event"]
    webhook = parse_webhook(
        json.dumps({"destination": "U" + "0" * 32, "events": [late, *broken, early]}).encode()
    )
    assert [e.type for e in webhook.events] == ["message", "postback"]
    assert webhook.skipped == 3
    message, postback = webhook.events
    assert message.text == "สวัสดี"
    assert message.source is not None
    assert (message.source.kind, message.source.user_id) == ("user", MEMBER)
    assert postback.postback_data == "action=ack&incident=inc-1"
    assert postback.active
    assert not postback.redelivery


def test_ids_of_the_wrong_shape_read_as_absent() -> None:
    event = postback_event("x", group_id=GROUP, user_id=MEMBER)
    event["source"]["userId"] = "U123"  # not U + 32 hex
    [read] = parse_webhook(webhook_body([event])).events
    assert read.source is not None
    assert (read.source.chat_id, read.source.user_id) == (GROUP, None)
    event["source"]["groupId"] = "C-not-a-group"
    [read] = parse_webhook(webhook_body([event])).events
    assert read.source is None


@pytest.mark.parametrize(
    "body", [b"", b"null", b"[]", b'{"events": {}}', b"\xc3\x28", b'{"events": [' * 5000, b"1e99999"]
)
def test_what_is_not_a_webhook_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        parse_webhook(body)


def test_postback_data() -> None:
    assert parse_postback("action=ack&incident=inc-0123456789abcdef0123") == IncidentAction(
        "ack", "inc-0123456789abcdef0123"
    )
    assert parse_postback("action=resolve&incident=man-1") == IncidentAction("resolve", "man-1")
    assert parse_postback(pick_data("01HZX", "e-service")) == SystemPick("01HZX", "e-service")
    assert parse_postback(pick_data("01HZX", None)) == SystemPick("01HZX", None)
    for junk in ("", "action=ack", "action=ack&incident=a&incident=b", "action=ack&incident=a b",
                 "action=delete&incident=a", "action=report&report=r&system=Bad!", "%%%", "a=" + "b&a=" * 20):  # fmt: skip
        assert parse_postback(junk) is None, junk


def test_command_ids_and_references_are_deterministic() -> None:
    assert command_id("postback", "01HZX") == command_id("postback", "01HZX")
    assert command_id("postback", "01HZX") != command_id("report", "01HZX")
    ref = reference(uuid.UUID(int=0xFFFFFFFFFF << 88))
    assert ref == "FAO-ZZZZZZZZ"
    assert reference(command_id("report", "a")).startswith("FAO-")
    assert len(reference(command_id("report", "a"))) == 12


def _incident(system_id: str) -> Incident:
    return Incident.model_validate(
        {"id": "inc-1", "system_id": system_id, "severity": "major", "status": "open", "title": "t",
         "started_at": "2026-11-29T00:00:00Z"}
    )  # fmt: skip


def test_members_of_the_owning_team_may_act() -> None:
    system = System(id="mail", name="Mail", team="apps")
    teams = [Team(id="apps", name="A"), Team(id="ops", name="O", platform=True)]
    apps = Person(id="a", name="A", teams=["apps"])
    ops = Person(id="o", name="O", teams=["ops"])
    owners = owning_teams(_incident("mail"), system, teams)
    assert may_act(apps, owners)
    assert not may_act(ops, owners)
    platform = owning_teams(_incident("fao-platform"), None, teams)
    assert may_act(ops, platform)
    assert not may_act(apps, platform)
    assert owning_teams(_incident("gone"), None, teams) == set(), "a system no longer in the inventory"


def test_people_are_named_without_the_command_source() -> None:
    assert display_actor("line:สมชาย", REPLIES) == "สมชาย"
    assert display_actor("cli:bob", REPLIES) == "bob"
    assert display_actor("fao:auto", REPLIES) == REPLIES.fao_auto
    assert display_actor(None, REPLIES) == REPLIES.someone
    assert display_actor("mystery:x", REPLIES) == "mystery:x"


def test_the_thai_catalogue_fills_placeholders_and_inserts_values_verbatim() -> None:
    text = REPLIES.text("already_acknowledged", actor="{reference}")
    assert text.endswith("{reference}")
    with pytest.raises(KeyError):
        REPLIES.text("report_received")
    assert "FAO-12345678" in REPLIES.text("report_received", reference="FAO-12345678")
