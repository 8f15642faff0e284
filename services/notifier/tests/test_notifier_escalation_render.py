"""The escalation message and the Official Account follow-up (``render.render_escalation``,
``render.render_report_resolved``) and what their catalogue sections allow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from fao.notifier.render import (
    MAX_BUBBLE_BYTES,
    Catalogue,
    load_catalogue,
    postback_data,
    render_escalation,
    render_report_resolved,
)
from fao.schemas import Incident, System

STARTED = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)
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
        "alerted": True,
        **changes,
    }
    return Incident.model_validate(fields)


def actions(bubble: dict[str, Any]) -> list[dict[str, Any]]:
    return [button["action"] for button in bubble["footer"]["contents"]]


def test_escalation_names_the_thai_system_the_wait_and_severity_with_the_problem_buttons() -> None:
    message = render_escalation(incident(), SYSTEM, load_catalogue("th"), waited=timedelta(minutes=10))
    assert message.kind == "escalation"
    assert (
        message.alt_text == "⏰ ยังไม่มีผู้รับทราบมา 10 นาที: พอร์ทัลบริการภาครัฐ (ความรุนแรง: วิกฤต) — หน้าแรก: HTTP 503"
    )
    assert message.bubble is not None
    assert message.bubble["header"]["contents"][0]["text"] == "⏰ ยังไม่มีผู้รับทราบ"
    assert "ไม่มีผู้รับทราบมา: 10 นาที" in message.text.splitlines()
    assert [a["data"] for a in actions(message.bubble)] == [
        postback_data("ack", "inc-0123456789abcdef0123"),
        postback_data("resolve", "inc-0123456789abcdef0123"),
    ]
    assert "แจ้งเตือนซ้ำ" not in message.text


def test_a_reminder_says_which_one_and_english_uses_english_words() -> None:
    th = render_escalation(incident(), SYSTEM, load_catalogue("th"), waited=timedelta(minutes=30), reminder=2)
    assert th.alt_text.endswith(" · แจ้งเตือนซ้ำครั้งที่ 2")
    assert th.text.splitlines()[1] == "แจ้งเตือนซ้ำครั้งที่ 2"
    en = render_escalation(
        incident(), SYSTEM, load_catalogue("en"), waited=timedelta(hours=1, minutes=5), reminder=1
    )
    assert (
        en.alt_text
        == "⏰ Not acknowledged for 1 h 5 min: e-Gov Portal (severity: critical) — หน้าแรก: HTTP 503 · Reminder 1"
    )
    assert en.bubble is not None
    assert [a["label"] for a in actions(en.bubble)] == ["Acknowledge", "Resolved"]


def test_escalation_stays_within_line_limits_and_leaves_out_buttons_that_would_not_fit() -> None:
    long = incident(id="inc-" + "x" * 400, title="ช" * 5000, cause="c" * 5000)
    message = render_escalation(long, None, load_catalogue("th"), waited=timedelta(days=3))
    assert message.bubble is not None
    assert "footer" not in message.bubble  # postback data would exceed 300 characters
    assert len(json.dumps(message.bubble, ensure_ascii=False).encode()) < MAX_BUBBLE_BYTES
    assert len(message.alt_text) <= 1500
    assert "\n" not in message.alt_text


def test_report_resolved_says_reference_and_when_on_one_line_only() -> None:
    message = render_report_resolved(["OA-0003", "OA-0001", "OA-0001"], STARTED, load_catalogue("th"))
    assert message.kind == "report_resolved"
    assert message.bubble is None
    assert message.text == (
        "เรื่องที่แจ้ง (เลขอ้างอิง OA-0003, OA-0001) ได้รับการแก้ไขแล้ว เมื่อ 5 ต.ค. 2569 14:03 น. ขอบคุณที่แจ้งให้ทราบ"
    )
    odd = render_report_resolved(["line\nbreak " + "9" * 100], STARTED, load_catalogue("en"))
    assert "\n" not in odd.text
    assert "9" * 40 not in odd.text  # a reference is shortened


@pytest.mark.parametrize("placeholder", ["{system}", "{cause}", "{incident}", "{title}"])
def test_a_citizen_message_may_not_show_internal_values(placeholder: str) -> None:
    """The catalogue refuses (at start-up) a report template using anything but reference and time."""
    data = load_catalogue("th").model_dump()
    data["reports"]["resolved"] = f"เรื่อง {{reference}} ของ {placeholder} แก้ไขแล้ว"
    with pytest.raises(ValidationError, match="only reference, resolved_at"):
        Catalogue.model_validate(data)


def test_an_escalation_template_with_an_unknown_placeholder_is_refused() -> None:
    data = load_catalogue("en").model_dump()
    data["escalation"]["alt_text"] = "⏰ {sytem}"
    with pytest.raises(ValidationError, match="sytem"):
        Catalogue.model_validate(data)
