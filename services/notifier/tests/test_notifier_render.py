"""Rendering of incident events as LINE Flex messages (pure; no servers)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from linebot.v3.messaging import FlexMessage
from pydantic import ValidationError

from fao.notifier.line_channel import to_flex_message
from fao.notifier.render import (
    MAX_ALT_TEXT_CHARS,
    MAX_BUBBLE_BYTES,
    MAX_POSTBACK_DATA_UNITS,
    Catalogue,
    RenderedMessage,
    load_catalogue,
    postback_data,
    render_event,
    utf16_units,
)
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import Incident, IncidentEvent, IncidentEventType, System
from fao.testing.fake_line import message_texts

STARTED = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)  # 14:03 in Bangkok
SYSTEM = System(id="egov-portal", name="e-Gov Portal", name_th="พอร์ทัลบริการภาครัฐ", team="infra")


def incident(**changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "inc-0123456789abcdef0123",
        "system_id": SYSTEM.id,
        "severity": "critical",
        "status": "open",
        "title": "หน้าแรก: HTTP 503",
        "cause": "HTTP 503 Service Unavailable",
        "started_at": STARTED,
        **changes,
    }
    return Incident.model_validate(fields)


def event(event_type: IncidentEventType, inc: Incident | None = None) -> IncidentEvent:
    inc = inc or incident()
    if event_type == "resolved" and inc.resolved_at is None:
        inc = inc.model_copy(update={"status": "resolved", "resolved_at": STARTED + timedelta(minutes=95)})
    return IncidentEvent(event_id=uuid.uuid4(), type=event_type, at=inc.resolved_at or STARTED, incident=inc)


@pytest.fixture
def th() -> Catalogue:
    return load_catalogue("th")


def texts(message: RenderedMessage) -> list[str]:
    flex = json.loads(to_flex_message(message).to_json())
    return message_texts(flex)


def postbacks(message: RenderedMessage) -> list[dict[str, Any]]:
    footer = message.bubble.get("footer")
    if footer is None:
        return []
    return [c["action"] for c in footer["contents"] if c["type"] == "button"]


def test_opened_names_the_system_in_thai_in_alt_text_and_bubble(th: Catalogue) -> None:
    """The Thai system name appears in the one-line altText and in the bubble body; the header
    says the system is down; severity and start time are in Thai."""
    message = render_event(event("opened"), SYSTEM, th)
    assert message.alt_text.startswith("🔴 ระบบขัดข้อง")
    assert "พอร์ทัลบริการภาครัฐ" in message.alt_text
    assert "\n" not in message.alt_text
    body = texts(message)
    assert "🔴 ระบบขัดข้อง" in body
    assert "พอร์ทัลบริการภาครัฐ" in body
    assert "วิกฤต" in body
    assert format_thai_datetime(STARTED) in body
    assert "5 ต.ค. 2569 14:03 น." in body
    assert "HTTP 503 Service Unavailable" in body


def test_resolved_says_back_to_normal_with_the_thai_duration(th: Catalogue) -> None:
    """The resolved message's header and altText say the system is back, with how long it was down."""
    message = render_event(event("resolved"), SYSTEM, th)
    duration = format_thai_duration(timedelta(minutes=95))
    assert duration == "1 ชม. 35 นาที"
    assert "กลับมาใช้งานได้ตามปกติ" in message.alt_text
    assert "พอร์ทัลบริการภาครัฐ" in message.alt_text
    assert duration in message.alt_text
    body = texts(message)
    assert "✅ กลับมาใช้งานได้ตามปกติ" in body
    assert duration in body


def test_buttons_only_on_opened_with_postback_data_the_gateway_can_parse(th: Catalogue) -> None:
    """Opened: "รับทราบ" → ``action=ack&incident=<id>``, "แก้ไขแล้ว" → ``action=resolve&...``;
    resolved: no footer at all."""
    opened = render_event(event("opened"), SYSTEM, th)
    actions = postbacks(opened)
    assert [a["label"] for a in actions] == ["รับทราบ", "แก้ไขแล้ว"]
    assert [a["data"] for a in actions] == [
        "action=ack&incident=inc-0123456789abcdef0123",
        "action=resolve&incident=inc-0123456789abcdef0123",
    ]
    for action in actions:
        assert action["type"] == "postback"
        assert utf16_units(action["data"]) <= MAX_POSTBACK_DATA_UNITS
    assert postbacks(render_event(event("resolved"), SYSTEM, th)) == []


def test_postback_data_round_trips_odd_incident_ids() -> None:
    """An id with ``&``/``=``/spaces is URL-encoded, so ``parse_qs`` gives it back exactly."""
    odd = "inc a&b=c/ด"
    assert parse_qs(postback_data("resolve", odd)) == {"action": ["resolve"], "incident": [odd]}


def test_buttons_are_left_out_when_the_incident_id_would_overflow_postback_data(th: Catalogue) -> None:
    """LINE refuses postback data over 300 UTF-16 units: such a message is sent without buttons."""
    message = render_event(event("opened", incident(id="i" * 290)), SYSTEM, th)
    assert postbacks(message) == []
    assert isinstance(to_flex_message(message), FlexMessage)


def test_huge_title_and_cause_stay_within_line_limits(th: Catalogue) -> None:
    """Titles/causes of any length: altText ≤ 1500 characters on one line, bubble JSON ≤ 30 KB."""
    big = incident(title="ช" * 20_000, cause="เหตุ\n" * 10_000)
    for event_type in ("opened", "resolved"):
        message = render_event(event(event_type, big), SYSTEM, th)
        assert len(message.alt_text) <= MAX_ALT_TEXT_CHARS
        assert "\n" not in message.alt_text
        assert len(message.bubble_json().encode()) <= MAX_BUBBLE_BYTES
        assert "พอร์ทัลบริการภาครัฐ" in message.alt_text


def test_typical_bubble_is_small(th: Catalogue) -> None:
    """A normal alert is a few KB: far from the 30 KB bubble limit."""
    assert len(render_event(event("opened"), SYSTEM, th).bubble_json().encode()) < 4096


def test_the_sdk_accepts_the_bubble(th: Catalogue) -> None:
    """``FlexContainer.from_dict`` validates the dict against LINE's schema; the result is a flex
    message with the same altText."""
    for event_type in ("opened", "resolved"):
        message = render_event(event(event_type), SYSTEM, th)
        flex = to_flex_message(message)
        assert flex.alt_text == message.alt_text
        assert json.loads(flex.to_json())["contents"]["type"] == "bubble"


def test_unknown_system_falls_back_to_the_id_and_system_without_thai_name_to_its_name(th: Catalogue) -> None:
    """No inventory entry → the system id is shown; no ``name_th`` → the configured name."""
    assert "egov-portal" in render_event(event("opened"), None, th).alt_text
    plain = SYSTEM.model_copy(update={"name_th": None})
    assert "e-Gov Portal" in render_event(event("opened"), plain, th).alt_text


def test_plain_text_carries_the_same_content(th: Catalogue) -> None:
    """The outbox/log text has the header, the Thai system name and the labelled values."""
    text = render_event(event("resolved"), SYSTEM, th).text
    lines = text.splitlines()
    assert lines[0] == "✅ กลับมาใช้งานได้ตามปกติ"
    assert "ระบบ: พอร์ทัลบริการภาครัฐ" in lines
    assert "ระยะเวลา: 1 ชม. 35 นาที" in lines


def test_english_catalogue_renders_english_words_and_gregorian_dates() -> None:
    """``language=en``: English header, system name and Gregorian Bangkok time."""
    en = load_catalogue("en")
    opened = render_event(event("opened"), SYSTEM, en)
    assert opened.alt_text == "🔴 System down: e-Gov Portal — หน้าแรก: HTTP 503 (since 5 Oct 2026 14:03)"
    assert [a["label"] for a in postbacks(opened)] == ["Acknowledge", "Resolved"]
    resolved = render_event(event("resolved"), SYSTEM, en)
    assert resolved.alt_text == "✅ e-Gov Portal is back to normal (down for 1 h 35 min)"


def test_other_event_types_are_not_rendered(th: Catalogue) -> None:
    """Only opened/resolved have messages yet; anything else is a ValueError, not a half message."""
    with pytest.raises(ValueError, match="acknowledged"):
        render_event(event("acknowledged"), SYSTEM, th)


def test_catalogues_are_complete() -> None:
    """Both packaged catalogues validate (every word present, labels within LINE's 40 characters)."""
    assert load_catalogue("th").buttons.ack.label == "รับทราบ"
    assert load_catalogue("en").calendar is not None


def test_a_catalogue_with_an_unknown_placeholder_is_refused_at_load() -> None:
    """A typo in a template fails when the catalogue loads (start-up), not on the first incident."""
    data = load_catalogue("th").model_dump()
    data["alt_text"]["opened"] = "🔴 {sytem} ขัดข้อง"
    with pytest.raises(ValidationError, match="sytem"):
        Catalogue.model_validate(data)
