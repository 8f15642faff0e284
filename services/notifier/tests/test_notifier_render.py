"""Rendering of incident events as LINE messages, every kind in both languages (pure; no servers)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import parse_qs

import pytest
from linebot.v3.messaging import FlexMessage, TextMessage
from pydantic import ValidationError

from fao.notifier.line_channel import to_flex_message, to_line_message
from fao.notifier.render import (
    MAX_ALT_TEXT_CHARS,
    MAX_BUBBLE_BYTES,
    MAX_POSTBACK_DATA_UNITS,
    MAX_TEXT_CHARS,
    Catalogue,
    RenderedMessage,
    load_catalogue,
    postback_data,
    render_delivery_notice,
    render_event,
    utf16_units,
)
from fao.notifier.settings import Language
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import PLATFORM_SYSTEM, Incident, IncidentEvent, IncidentEventType, IncidentKind, System
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
        "alerted": True,
        **changes,
    }
    return Incident.model_validate(fields)


def event(
    event_type: IncidentEventType, inc: Incident | None = None, *, actor: str | None = None, text: str = ""
) -> IncidentEvent:
    inc = inc or incident()
    if event_type == "resolved" and inc.resolved_at is None:
        inc = inc.model_copy(update={"status": "resolved", "resolved_at": STARTED + timedelta(minutes=95)})
    return IncidentEvent(
        event_id=uuid.uuid4(),
        type=event_type,
        at=inc.resolved_at or STARTED,
        incident=inc,
        actor=actor,
        text=text,
    )


@pytest.fixture
def th() -> Catalogue:
    return load_catalogue("th")


def texts(message: RenderedMessage) -> list[str]:
    flex = json.loads(to_flex_message(message).to_json())
    return message_texts(flex)


def postbacks(message: RenderedMessage) -> list[dict[str, Any]]:
    assert message.bubble is not None
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


def test_buttons_only_on_problem_messages_with_postback_data_the_gateway_can_parse(th: Catalogue) -> None:
    """Problem (opened): "รับทราบ" → ``action=ack&incident=<id>``, "แก้ไขแล้ว" → ``action=resolve&...``;
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


def test_events_that_are_not_sent_are_not_rendered(th: Catalogue) -> None:
    """An event ``should_send`` refuses (noted, a muted opened) is a ValueError, not a half message."""
    with pytest.raises(ValueError, match="noted"):
        render_event(event("noted"), SYSTEM, th)
    with pytest.raises(ValueError, match="opened"):
        render_event(event("opened", incident(muted="maintenance", alerted=False)), SYSTEM, th)


def test_catalogues_are_complete() -> None:
    """Both packaged catalogues validate (every word present, labels within LINE's 40 characters)."""
    assert load_catalogue("th").buttons.ack.label == "รับทราบ"
    assert load_catalogue("en").calendar is not None


def test_a_catalogue_with_an_unknown_placeholder_is_refused_at_load() -> None:
    """A typo in a template fails when the catalogue loads (start-up), not on the first incident."""
    for path in (
        ("problem", "outage", "alt_text"),
        ("fixed", "manual", "alt_text"),
        ("resolved_by",),
        ("delivery", "failing"),
    ):
        data = load_catalogue("th").model_dump()
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "🔴 {sytem} ขัดข้อง"
        with pytest.raises(ValidationError, match="sytem"):
            Catalogue.model_validate(data)


def test_delivery_notices_say_since_when_how_long_and_how_many_wait() -> None:
    """The notifier's own notices to the platform team, in both languages, on one line."""
    since, now = STARTED, STARTED + timedelta(minutes=7)
    th = render_delivery_notice("delivery_failing", load_catalogue("th"), since=since, now=now, undelivered=3)
    assert th == (
        f"⚠️ Fao ส่งข้อความเข้า LINE ไม่สำเร็จตั้งแต่ {format_thai_datetime(since)} "
        f"(นาน {format_thai_duration(now - since)}) มีข้อความค้างส่ง 3 ข้อความ จะส่งตามลำดับเมื่อ LINE ใช้งานได้"
    )
    en = render_delivery_notice(
        "delivery_recovered", load_catalogue("en"), since=since, now=now, undelivered=0
    )
    assert en == "✅ Fao sends to LINE again (it failed for 7 min)"


# --- Every kind of incident, both languages -------------------------------------------------

# (kind, incident fields, the problem header and the fixed header) in Thai, then in English.
KIND_HEADERS: dict[str, dict[IncidentKind, tuple[str, str]]] = {
    "th": {
        "outage": ("🔴 ระบบขัดข้อง", "✅ กลับมาใช้งานได้ตามปกติ"),
        "flapping": ("🟠 ระบบไม่เสถียร", "✅ กลับมาเสถียรแล้ว"),
        "zone": ("🟡 ปัญหาเฉพาะโซน", "✅ โซนกลับมาปกติ"),
        "prober_silent": ("⚪ เครื่องตรวจหยุดรายงานผล", "✅ เครื่องตรวจกลับมารายงานผลแล้ว"),
        "manual": ("📣 มีผู้แจ้งปัญหา", "✅ แก้ไขปัญหาที่แจ้งแล้ว"),
        "slow": ("🐢 ระบบตอบสนองช้า", "✅ ระบบตอบสนองเป็นปกติแล้ว"),
        "expiring": ("🔐 ใบรับรองใกล้หมดอายุ", "✅ ต่ออายุใบรับรองแล้ว"),
    },
    "en": {
        "outage": ("🔴 System down", "✅ System back to normal"),
        "flapping": ("🟠 System unstable", "✅ Stable again"),
        "zone": ("🟡 Zone problem", "✅ Zone back to normal"),
        "prober_silent": ("⚪ Probers stopped reporting", "✅ Probers reporting again"),
        "manual": ("📣 Problem reported", "✅ Reported problem fixed"),
        "slow": ("🐢 Responding slowly", "✅ Responding normally again"),
        "expiring": ("🔐 Certificate expires soon", "✅ Certificate renewed"),
    },
}
PLATFORM_KINDS: tuple[IncidentKind, ...] = ("zone", "prober_silent")


def kind_incident(kind: IncidentKind, **changes: Any) -> Incident:
    platform = kind in PLATFORM_KINDS
    return incident(
        kind=kind,
        system_id=PLATFORM_SYSTEM if platform else SYSTEM.id,
        severity="minor" if kind == "zone" else "critical",
        zones=["chiangmai"] if platform else ["bangkok", "chiangmai"],
        monitor_ids=["egov-portal-home", "mail-smtp", "dns-primary"]
        if kind == "zone"
        else ["egov-portal-home"],
        **changes,
    )


def kind_system(kind: IncidentKind) -> System | None:
    return None if kind in PLATFORM_KINDS else SYSTEM


@pytest.mark.parametrize("language", ["th", "en"])
@pytest.mark.parametrize("kind", get_args(IncidentKind))
def test_every_kind_has_its_own_problem_and_fixed_look_in_both_languages(
    kind: IncidentKind, language: Language
) -> None:
    """Each kind's header is in the bubble, the plain text and the altText; problem messages have
    both buttons, fixed ones none; LINE's limits hold and the SDK accepts the bubble."""
    cat = load_catalogue(language)
    problem_header, fixed_header = KIND_HEADERS[language][kind]
    inc = kind_incident(kind)
    opened = render_event(event("opened", inc, actor="สมชาย", text="เข้าเว็บไม่ได้"), kind_system(kind), cat)
    fixed = render_event(event("resolved", inc), kind_system(kind), cat)
    for message, header in ((opened, problem_header), (fixed, fixed_header)):
        assert header in texts(message)
        assert message.text.splitlines()[0] == header
        assert message.alt_text.startswith(header[:1])  # the same sign starts the notification
        assert "\n" not in message.alt_text
        assert len(message.alt_text) <= MAX_ALT_TEXT_CHARS
        assert len(message.bubble_json().encode()) <= MAX_BUBBLE_BYTES
        assert isinstance(to_flex_message(message), FlexMessage)
    assert [a["data"].split("&")[0] for a in postbacks(opened)] == ["action=ack", "action=resolve"]
    assert postbacks(fixed) == []
    assert (opened.kind, fixed.kind) == ("problem", "fixed")


@pytest.mark.parametrize("kind", get_args(IncidentKind))
def test_thai_messages_name_the_system_in_thai(kind: IncidentKind, th: Catalogue) -> None:
    """The default catalogue is Thai: the system's Thai name (or Fao's own name for zone and
    prober incidents) in altText and body, Thai severity and Buddhist-era date."""
    name = "ระบบเฝ้าระวัง Fao" if kind in PLATFORM_KINDS else "พอร์ทัลบริการภาครัฐ"
    message = render_event(event("opened", kind_incident(kind), actor="สมชาย"), kind_system(kind), th)
    body = texts(message)
    # Zone and prober messages are about a zone: their altText names it instead of a system.
    assert ("chiangmai" if kind in PLATFORM_KINDS else name) in message.alt_text
    assert name in body
    assert ("เล็กน้อย" if kind == "zone" else "วิกฤต") in body
    assert "5 ต.ค. 2569 14:03 น." in body


def test_flapping_says_unstable_then_stable_again(th: Catalogue) -> None:
    """Flapping: "🟠 ระบบไม่เสถียร" when it starts, "กลับมาเสถียรแล้ว" with how long when it ends."""
    inc = kind_incident("flapping")
    opened = render_event(event("opened", inc), SYSTEM, th)
    assert opened.alt_text.startswith("🟠 ระบบไม่เสถียร: พอร์ทัลบริการภาครัฐ")
    outage = render_event(event("opened"), SYSTEM, th)
    assert opened.bubble is not None
    assert outage.bubble is not None
    assert opened.bubble["header"]["backgroundColor"] != outage.bubble["header"]["backgroundColor"]
    fixed = render_event(event("resolved", inc), SYSTEM, th)
    assert fixed.alt_text == "✅ พอร์ทัลบริการภาครัฐ กลับมาเสถียรแล้ว (ไม่เสถียรนาน 1 ชม. 35 นาที)"


def test_zone_problem_says_which_zone_and_how_many_monitors(th: Catalogue) -> None:
    """A zone problem (low severity, for the platform team): the zone and the number of failing
    monitors, in the altText and as rows."""
    message = render_event(event("opened", kind_incident("zone")), None, th)
    assert message.alt_text.startswith("🟡 ปัญหาเฉพาะโซน chiangmai: รายการตรวจไม่ผ่าน 3 รายการ")
    lines = message.text.splitlines()
    assert "โซน: chiangmai" in lines
    assert "รายการตรวจที่ไม่ผ่าน: 3" in lines
    assert "ความรุนแรง: เล็กน้อย" in lines
    en = render_event(event("opened", kind_incident("zone")), None, load_catalogue("en"))
    assert en.alt_text.startswith("🟡 Zone problem in chiangmai (failing monitors: 3)")
    assert "System: Fao monitoring" in en.text.splitlines()


def test_prober_silent_says_the_probers_of_the_zone_stopped_reporting(th: Catalogue) -> None:
    message = render_event(event("opened", kind_incident("prober_silent")), None, th)
    assert message.alt_text == "⚪ เครื่องตรวจของโซน chiangmai หยุดรายงานผล (ตั้งแต่ 5 ต.ค. 2569 14:03 น.)"
    fixed = render_event(event("resolved", kind_incident("prober_silent")), None, th)
    assert "เครื่องตรวจของโซน chiangmai กลับมารายงานผลแล้ว" in fixed.alt_text
    en = render_event(event("opened", kind_incident("prober_silent")), None, load_catalogue("en"))
    assert en.alt_text.startswith("⚪ Probers of zone chiangmai stopped reporting")


def test_slow_says_up_but_slow_with_the_rule_that_was_broken(th: Catalogue) -> None:
    slow = kind_incident(
        "slow",
        title="หน้าแรก: slower than 800 ms",
        cause="3 of the last 5 checks slower than 800 ms (latest 1200 ms)",
    )
    message = render_event(event("opened", slow), SYSTEM, th)
    assert message.alt_text.startswith("🐢 พอร์ทัลบริการภาครัฐ ยังใช้งานได้แต่ตอบสนองช้า: หน้าแรก: slower than 800 ms")
    assert "3 of the last 5 checks slower than 800 ms (latest 1200 ms)" in message.alt_text
    fixed = render_event(event("resolved", slow), SYSTEM, load_catalogue("en"))
    assert fixed.alt_text.startswith("✅ e-Gov Portal responds at normal speed again (slow for ")


def test_expiring_names_the_certificate_and_the_days_left(th: Catalogue) -> None:
    expiring = kind_incident(
        "expiring",
        title="portal-cert: certificate expires in 20 days",
        cause="the TLS certificate expires on 2026-12-19 (20.5 days left, warning below 21)",
    )
    message = render_event(event("opened", expiring), SYSTEM, th)
    assert message.alt_text == (
        "🔐 พอร์ทัลบริการภาครัฐ: portal-cert: certificate expires in 20 days — the TLS certificate expires on"
        " 2026-12-19 (20.5 days left, warning below 21)"
    )
    renewed = render_event(event("resolved", expiring), SYSTEM, load_catalogue("en"))
    assert renewed.alt_text.startswith("✅ e-Gov Portal: the certificate was renewed (warned ")


def test_manual_report_shows_who_reported_and_what_they_wrote(th: Catalogue) -> None:
    """A problem reported by a person: the report text (``event.text``) and the reporter
    (``event.actor``) in the altText and as rows."""
    report = "เข้าระบบไม่ได้ตั้งแต่เช้า\nขึ้นหน้าขาว"
    message = render_event(
        event("opened", kind_incident("manual"), actor="สมชาย ใจดี", text=report), SYSTEM, th
    )
    assert message.alt_text == "📣 สมชาย ใจดี แจ้งปัญหา พอร์ทัลบริการภาครัฐ: เข้าระบบไม่ได้ตั้งแต่เช้า ขึ้นหน้าขาว"
    body = texts(message)
    assert "ผู้แจ้ง" in body
    assert "สมชาย ใจดี" in body
    assert "รายละเอียด" in body
    assert report in body
    en = render_event(
        event("opened", kind_incident("manual"), actor="Somchai", text="blank page"),
        SYSTEM,
        load_catalogue("en"),
    )
    assert en.alt_text == "📣 Somchai reported a problem with e-Gov Portal: blank page"
    assert "Reported by: Somchai" in en.text.splitlines()
    nobody = render_event(event("opened", kind_incident("manual"), text="ล่ม"), SYSTEM, th)
    assert nobody.alt_text.startswith("📣 ไม่ระบุชื่อ แจ้งปัญหา")


# --- Dependants, resolved by, unmute reasons ------------------------------------------------

DEPENDANTS = [f"agency-{i:02d}" for i in range(12)]


@pytest.mark.parametrize("event_type", ["opened", "resolved"])
def test_parent_messages_count_the_affected_dependants_and_list_a_handful(
    event_type: IncidentEventType, th: Catalogue
) -> None:
    """12 dependants: the count in altText and body, the first five ids, then "and 7 more"."""
    message = render_event(event(event_type, incident(dependants=DEPENDANTS)), SYSTEM, th)
    line = "กระทบระบบที่พึ่งพา 12 ระบบ" if event_type == "opened" else "ระบบที่พึ่งพาซึ่งได้รับผลกระทบ 12 ระบบ"
    assert line in message.alt_text
    body = texts(message)
    assert line in body
    ids = "agency-00, agency-01, agency-02, agency-03, agency-04 และอีก 7 ระบบ"
    assert ids in body
    assert "agency-05" not in message.bubble_json()
    assert f"{line} ({ids})" in message.text.splitlines()


def test_dependants_in_english_and_none_shown_without_dependants() -> None:
    en = load_catalogue("en")
    message = render_event(event("opened", incident(dependants=DEPENDANTS[:2])), SYSTEM, en)
    assert "Dependent systems affected: 2" in message.alt_text
    assert "agency-00, agency-01" in texts(message)
    assert "+" not in texts(message)[-1]
    plain = render_event(event("opened"), SYSTEM, load_catalogue("th"))
    assert "พึ่งพา" not in plain.alt_text
    assert "พึ่งพา" not in plain.bubble_json()


def test_a_huge_dependant_list_stays_within_line_limits(th: Catalogue) -> None:
    many = [f"s{i:04d}-" + "x" * 56 for i in range(2000)]
    for event_type in ("opened", "resolved"):
        message = render_event(event(event_type, incident(dependants=many)), SYSTEM, th)
        assert "2000 ระบบ" in message.alt_text
        assert len(message.bubble_json().encode()) <= MAX_BUBBLE_BYTES
        assert len(message.alt_text) <= MAX_ALT_TEXT_CHARS


@pytest.mark.parametrize(("language", "expected"), [("th", "แก้ไขโดย สมหญิง"), ("en", "Resolved by สมหญิง")])
def test_resolved_by_a_person_says_who(language: Language, expected: str) -> None:
    """``resolved_by`` not "fao:auto": the fixed message says who resolved it."""
    cat = load_catalogue(language)
    inc = incident(status="resolved", resolved_at=STARTED + timedelta(minutes=95), resolved_by="สมหญิง")
    message = render_event(event("resolved", inc, actor="สมหญิง"), SYSTEM, cat)
    assert expected in message.alt_text
    assert expected in texts(message)
    assert expected in message.text.splitlines()


def test_resolved_by_fao_itself_names_nobody(th: Catalogue) -> None:
    """An automatic recovery (``resolved_by`` "fao:auto", actor "fao") has no "resolved by" line."""
    inc = incident(status="resolved", resolved_at=STARTED + timedelta(minutes=95), resolved_by="fao:auto")
    message = render_event(event("resolved", inc, actor="fao"), SYSTEM, th)
    assert "แก้ไขโดย" not in message.alt_text
    assert "แก้ไขโดย" not in message.text
    assert "แก้ไขโดย" not in message.bubble_json()


@pytest.mark.parametrize(
    ("language", "reason", "expected"),
    [
        ("th", "maintenance_ended", "หมดช่วงบำรุงรักษาแล้ว แต่ระบบยังขัดข้องอยู่"),
        ("th", "parent_resolved", "ระบบที่ระบบนี้พึ่งพากลับมาใช้งานได้แล้ว แต่ระบบนี้ยังขัดข้องอยู่"),
        ("en", "maintenance_ended", "The maintenance window has ended and the system is still down"),
        ("en", "parent_resolved", "The system this one depends on has recovered, but this one is still down"),
    ],
)
def test_unmuted_problem_says_why_it_comes_now(language: Language, reason: str, expected: str) -> None:
    """An ``unmuted`` event is the problem message, late, with a line saying why."""
    cat = load_catalogue(language)
    message = render_event(event("unmuted", incident(), text=reason), SYSTEM, cat)
    assert message.kind == "problem"
    assert message.alt_text.startswith(KIND_HEADERS[language]["outage"][0])
    assert message.alt_text.endswith(expected)
    assert expected in texts(message)
    assert message.text.splitlines()[1] == expected
    assert len(postbacks(message)) == 2


def test_unmuted_with_an_unknown_reason_is_the_plain_problem_message(th: Catalogue) -> None:
    message = render_event(event("unmuted", incident(), text="something_new"), SYSTEM, th)
    plain = render_event(event("opened"), SYSTEM, th)
    assert message.alt_text == plain.alt_text
    assert "something_new" not in message.bubble_json()


# --- Acknowledged ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("th", "👀 รับทราบโดย สมชาย: พอร์ทัลบริการภาครัฐ — หน้าแรก: HTTP 503"),
        ("en", "👀 Acknowledged by สมชาย: e-Gov Portal — หน้าแรก: HTTP 503"),
    ],
)
def test_acknowledged_is_one_short_text_message_naming_who(language: Language, expected: str) -> None:
    """A text message (no bubble, so no buttons) saying who acknowledged, the SDK's TextMessage."""
    inc = incident(status="acknowledged", acknowledged_at=STARTED, acknowledged_by="สมชาย")
    message = render_event(event("acknowledged", inc, actor="สมชาย"), SYSTEM, load_catalogue(language))
    assert message.kind == "acknowledged"
    assert message.bubble is None
    assert message.text == expected
    assert message.alt_text == expected
    line_message = to_line_message(message)
    assert isinstance(line_message, TextMessage)
    assert json.loads(line_message.to_json()) == {"type": "text", "text": expected}
    with pytest.raises(ValueError, match="text message"):
        to_flex_message(message)


def test_acknowledged_falls_back_to_acknowledged_by_then_to_someone(th: Catalogue) -> None:
    inc = incident(status="acknowledged", acknowledged_by="สมหญิง")
    assert "รับทราบโดย สมหญิง" in render_event(event("acknowledged", inc), SYSTEM, th).text
    anonymous = incident(status="acknowledged")
    assert "รับทราบโดย ไม่ระบุชื่อ" in render_event(event("acknowledged", anonymous), SYSTEM, th).text


def test_acknowledged_text_stays_short_whatever_the_title(th: Catalogue) -> None:
    inc = incident(status="acknowledged", title="ช" * 20_000)
    message = render_event(event("acknowledged", inc, actor="x" * 5000), SYSTEM, th)
    assert utf16_units(message.text) <= MAX_TEXT_CHARS
    assert "\n" not in message.text


def test_every_incident_kind_has_a_look_in_the_catalogue() -> None:
    """A kind added to the contract must get its words in both catalogues."""
    for language in ("th", "en"):
        cat = load_catalogue(language)
        assert set(cat.problem.model_dump()) == set(get_args(IncidentKind))
        assert set(cat.fixed.model_dump()) == set(get_args(IncidentKind))


def test_a_command_actor_is_shown_by_name_without_its_source(th: Catalogue) -> None:
    """The correlator records commands' actors as ``<source>:<actor>``: people read the name."""
    inc = incident(status="resolved", resolved_at=STARTED + timedelta(minutes=5), resolved_by="line:สมหญิง")
    assert "แก้ไขโดย สมหญิง" in render_event(event("resolved", inc, actor="line:สมหญิง"), SYSTEM, th).text
    acked = incident(status="acknowledged", acknowledged_by="cli:somchai")
    assert (
        "รับทราบโดย somchai:"
        in render_event(event("acknowledged", acked, actor="cli:somchai"), SYSTEM, th).text
    )
    odd = incident(status="acknowledged", acknowledged_by="ops:night shift")  # not a command source
    assert "รับทราบโดย ops:night shift:" in render_event(event("acknowledged", odd), SYSTEM, th).text


def test_a_manual_report_is_shown_once_not_also_as_title_and_cause(th: Catalogue) -> None:
    """The correlator copies the report into the title and the cause of a manual incident."""
    report = "เข้าระบบ e-Service ไม่ได้\nขึ้น error 500"
    inc = kind_incident("manual", title=" ".join(report.split()), cause=report)
    message = render_event(event("opened", inc, actor="line:สมชาย", text=report), SYSTEM, th)
    assert message.text.count("ขึ้น error 500") == 1
    assert "ผู้แจ้ง: สมชาย" in message.text.splitlines()
    assert message.alt_text == "📣 สมชาย แจ้งปัญหา พอร์ทัลบริการภาครัฐ: เข้าระบบ e-Service ไม่ได้ ขึ้น error 500"
    fixed = render_event(event("resolved", inc), SYSTEM, th)
    assert "เหตุการณ์: เข้าระบบ e-Service ไม่ได้ ขึ้น error 500" in fixed.text.splitlines()
