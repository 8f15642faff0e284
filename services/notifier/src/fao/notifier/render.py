"""Which incident events become LINE messages, and those messages: a Flex bubble (or a short text),
its one-line altText and a plain text.

The rule the product is built on: one message when a real problem starts and one when it ends, to
the team that owns the cause. ``should_send`` is that rule, as a pure function of the event:

=================  ==========================================  ===============
event              condition                                   message
=================  ==========================================  ===============
``opened``         ``incident.muted is None``                  ``problem``
``unmuted``        (held back until now: says why)             ``problem``
``resolved``       ``incident.alerted`` (the team was told)    ``fixed``
``acknowledged``   ``incident.alerted``                        ``acknowledged``
anything else      (noted, suppressed, flapping, reopened,     nothing
                   escalated, opened while muted)
=================  ==========================================  ===============

A problem or fixed message looks like its incident's ``kind`` (outage, flapping, zone,
prober_silent, manual); an acknowledged message is one short text line without buttons.

Pure functions over the event, the system and a message catalogue. The words live in
``templates/messages_<language>.yaml`` (Thai by default, English as an option); this module only
arranges them. Limits kept here (LINE Messaging API reference):

- altText at most 1500 characters, on one line, naming the system;
- a bubble's JSON at most 30 KB (free texts are shortened and at most ``MAX_DEPENDANTS_SHOWN``
  dependant ids are listed, to keep far below it);
- postback ``data`` at most 300 UTF-16 code units; buttons are left out rather than exceed it;
- a text message far below LINE's 5000 UTF-16 units (``MAX_TEXT_CHARS``).

Problem messages carry the "acknowledge" and "resolve" postback buttons that the gateway turns
into commands; fixed and acknowledged messages have none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, get_args
from urllib.parse import urlencode
from uuid import UUID

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fao.notifier.settings import Language
from fao.runtime.thai import BANGKOK, format_thai_datetime, format_thai_duration
from fao.schemas import (
    PLATFORM_SYSTEM,
    CommandSource,
    Incident,
    IncidentEvent,
    IncidentKind,
    Severity,
    System,
)

# escalation: an unacknowledged problem, told again to the people and groups of a policy step;
# report_resolved: to a person who reported the problem to the Official Account, when it is resolved.
# digest: many messages of one group in a storm (or while the LINE quota runs low), as one
# (fao.notifier.digest, render_digest). review: the quarterly owner review of a team's systems and
# members (fao.notifier.review, render_review).
MessageKind = Literal["problem", "fixed", "acknowledged", "escalation", "report_resolved", "digest", "review"]

MAX_ALT_TEXT_CHARS: Final = 1500
MAX_BUBBLE_BYTES: Final = 30 * 1024
MAX_POSTBACK_DATA_UNITS: Final = 300
MAX_FIELD_CHARS: Final = 400  # title, cause and report text, each; keeps the bubble far below 30 KB
MAX_TEXT_CHARS: Final = 1000  # an acknowledged message: short, far below LINE's 5000
MAX_DEPENDANTS_SHOWN: Final = 5

# Who Fao itself is when it resolves an incident (``Incident.resolved_by``, ``IncidentEvent.actor``).
AUTOMATIC_ACTORS: Final = frozenset({"fao:auto", "fao"})
COMMAND_SOURCES: Final = frozenset(get_args(CommandSource))
UNMUTE_REASONS: Final = ("maintenance_ended", "parent_resolved")

PROBLEM_COLORS: Final[dict[IncidentKind, str]] = {
    "outage": "#C62828",
    "flapping": "#E65100",
    "zone": "#F57F17",
    "prober_silent": "#546E7A",
    "manual": "#6A1B9A",
    "slow": "#F9A825",
    "expiring": "#F9A825",
}
FIXED_COLOR: Final = "#2E7D32"
SEVERITY_COLORS: Final[dict[Severity, str]] = {"critical": "#B71C1C", "major": "#E65100", "minor": "#F9A825"}
NOTE_COLOR: Final = "#E65100"
LABEL_COLOR: Final = "#8C8C8C"
TEXT_COLOR: Final = "#333333"

# The values a catalogue's templates may use, as ``{name}``.
PLACEHOLDERS: Final = (
    "system",
    "title",
    "cause",
    "severity",
    "started_at",
    "resolved_at",
    "duration",
    "incident",
    "zones",
    "monitors",
    "actor",
    "report",
    "count",
)


def should_send(event: IncidentEvent) -> MessageKind | None:
    """The message this event is worth to the owning team, or None (the table in the module doc)."""
    incident = event.incident
    if event.type == "opened":
        return "problem" if incident.muted is None else None
    if event.type == "unmuted":
        return "problem"
    if event.type == "resolved":
        return "fixed" if incident.alerted else None
    if event.type == "acknowledged":
        return "acknowledged" if incident.alerted else None
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Labels(_Strict):
    system: str
    title: str
    cause: str
    severity: str
    started_at: str
    resolved_at: str
    duration: str
    incident: str
    zones: str
    monitors: str
    actor: str
    report: str


class _Button(_Strict):
    label: str = Field(min_length=1, max_length=40)
    display_text: str = Field(min_length=1, max_length=300)


class _Buttons(_Strict):
    ack: _Button
    resolve: _Button


class _Calendar(_Strict):
    months: list[str] = Field(min_length=12, max_length=12)
    day: str
    hour: str
    minute: str
    second: str


class _Look(_Strict):
    """How one kind of incident is announced: the bubble's header and the altText template."""

    header: str = Field(min_length=1)
    alt_text: str = Field(min_length=1)


class _Looks(_Strict):
    outage: _Look
    flapping: _Look
    zone: _Look
    prober_silent: _Look
    manual: _Look
    slow: _Look
    expiring: _Look

    def of(self, kind: IncidentKind) -> _Look:
        looks: dict[IncidentKind, _Look] = {
            "outage": self.outage,
            "flapping": self.flapping,
            "zone": self.zone,
            "prober_silent": self.prober_silent,
            "manual": self.manual,
            "slow": self.slow,
            "expiring": self.expiring,
        }
        return looks[kind]


class _Unmuted(_Strict):
    maintenance_ended: str = Field(min_length=1)
    parent_resolved: str = Field(min_length=1)

    def reason(self, text: str) -> str:
        """The line for an ``unmuted`` event's ``text``; empty for a reason this version does not know."""
        if text == "maintenance_ended":
            return self.maintenance_ended
        if text == "parent_resolved":
            return self.parent_resolved
        return ""


class _Dependants(_Strict):
    problem: str = Field(min_length=1)
    fixed: str = Field(min_length=1)
    more: str = Field(min_length=1)


class _DeliveryNotices(_Strict):
    """The notifier's own notices to the platform team (outbox): LINE deliveries failing, recovered."""

    failing: str = Field(min_length=1)
    recovered: str = Field(min_length=1)


class _Escalation(_Strict):
    """A problem nobody has acknowledged, told again (an escalation step or one of its reminders)."""

    header: str = Field(min_length=1)
    alt_text: str = Field(min_length=1)
    waiting: str = Field(min_length=1)
    """The label of the row saying for how long nobody has acknowledged it."""
    reminder: str = Field(min_length=1)
    """Added when it is a step's reminder ({count}: which one)."""


def check_placeholders(
    section: str, templates: Iterable[tuple[str, str]], allowed: Iterable[str], *, only: bool = False
) -> None:
    """Raise ValueError naming ``section.name`` when a template uses a placeholder not in
    ``allowed`` or is malformed; ``only``: say which placeholders are allowed (a citizen's
    message, where the list is the point)."""
    names = tuple(allowed)
    blanks = dict.fromkeys(names, "")
    for name, template in templates:
        where = f"{section}.{name}" if section else name
        try:
            template.format_map(blanks)
        except (KeyError, IndexError, ValueError) as exc:
            if only:
                raise ValueError(f"{where}: only {', '.join(names)} may be used, not {exc}") from exc
            raise ValueError(f"{where}: unknown or malformed placeholder {exc}") from exc


# The only values a message to a citizen may show: no system, host, URL or error detail.
REPORT_PLACEHOLDERS: Final = ("reference", "resolved_at")


class _Reports(_Strict):
    """Messages to a person who reported a problem to the Official Account (often a citizen)."""

    resolved: str = Field(min_length=1)

    @model_validator(mode="after")
    def _only_public_values(self) -> _Reports:
        check_placeholders("reports", [("resolved", self.resolved)], REPORT_PLACEHOLDERS, only=True)
        return self


class _Digest(_Strict):
    """A digest (``fao.notifier.render_digest``): many incidents of one group in one message."""

    problem: str = Field(min_length=1)
    fixed: str = Field(min_length=1)
    acknowledged: str = Field(min_length=1)
    recovered: str = Field(min_length=1)
    acknowledged_by: str = Field(min_length=1)
    more: str = Field(min_length=1)
    storm: str = Field(min_length=1)
    digest_only: str = Field(min_length=1)


# The values the quota notices may use (``fao.notifier.quota``).
QUOTA_PLACEHOLDERS: Final = ("used", "limit", "remaining", "forecast", "duration")


class _QuotaNotices(_Strict):
    """The notifier's notices to the platform team about the month's LINE quota (outbox)."""

    low: str = Field(min_length=1)
    ok: str = Field(min_length=1)

    @model_validator(mode="after")
    def _known_placeholders(self) -> _QuotaNotices:
        check_placeholders("quota", [("low", self.low), ("ok", self.ok)], QUOTA_PLACEHOLDERS)
        return self


# The values the owner review's templates may use (``fao.notifier.render_review``).
REVIEW_PLACEHOLDERS: Final = ("team", "round", "count")


class _Review(_Strict):
    """The quarterly owner review: a team is asked whether its systems and members are right."""

    header: str = Field(min_length=1)
    alt_text: str = Field(min_length=1)
    intro: str = Field(min_length=1)
    systems: str = Field(min_length=1)
    members: str = Field(min_length=1)
    nobody: str = Field(min_length=1)
    """Shown under an empty list."""
    more: str = Field(min_length=1)
    ok: _Button
    fix: _Button

    @model_validator(mode="after")
    def _known_placeholders(self) -> _Review:
        names = ("header", "alt_text", "intro", "systems", "members", "nobody", "more")
        check_placeholders("review", [(n, getattr(self, n)) for n in names], REVIEW_PLACEHOLDERS)
        return self


class Catalogue(_Strict):
    """The words of one language, as loaded from ``templates/messages_<language>.yaml``."""

    language: Language
    dates: Literal["thai", "gregorian"]
    platform_name: str = Field(min_length=1)
    problem: _Looks
    fixed: _Looks
    acknowledged: str = Field(min_length=1)
    unmuted: _Unmuted
    dependants: _Dependants
    resolved_by: str = Field(min_length=1)
    someone: str = Field(min_length=1)
    labels: _Labels
    severity: dict[Severity, str]
    buttons: _Buttons
    delivery: _DeliveryNotices
    escalation: _Escalation
    reports: _Reports
    digest: _Digest
    quota: _QuotaNotices
    review: _Review
    calendar: _Calendar | None = None

    def templates(self) -> Iterator[tuple[str, str]]:
        """Every template filled with placeholders, by its path in the YAML file."""
        for group in ("problem", "fixed"):
            looks: _Looks = getattr(self, group)
            for kind, look in looks:
                yield f"{group}.{kind}.alt_text", look.alt_text
        yield "acknowledged", self.acknowledged
        for name, text in self.unmuted:
            yield f"unmuted.{name}", text
        for name, text in self.dependants:
            yield f"dependants.{name}", text
        yield "resolved_by", self.resolved_by
        for name, text in self.delivery:
            yield f"delivery.{name}", text
        for name, text in self.escalation:
            yield f"escalation.{name}", text
        for name, text in self.digest:
            yield f"digest.{name}", text

    @model_validator(mode="after")
    def _templates_use_known_placeholders(self) -> Catalogue:
        check_placeholders("", self.templates(), PLACEHOLDERS)
        if self.dates == "gregorian" and self.calendar is None:
            raise ValueError("dates: gregorian needs a calendar section (months and units)")
        return self

    def format_datetime(self, value: datetime) -> str:
        if self.dates == "thai" or self.calendar is None:
            return format_thai_datetime(value)
        local = value.astimezone(BANGKOK)
        return f"{local.day} {self.calendar.months[local.month - 1]} {local.year} {local:%H:%M}"

    def format_duration(self, delta: timedelta) -> str:
        if self.dates == "thai" or self.calendar is None:
            return format_thai_duration(delta)
        cal = self.calendar
        days, rest = divmod(max(0, int(delta.total_seconds())), 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        shown = [
            f"{n} {unit}" for n, unit in ((days, cal.day), (hours, cal.hour), (minutes, cal.minute)) if n
        ]
        return " ".join(shown) if shown else f"{seconds} {cal.second}"


@cache
def load_catalogue(language: Language = "th") -> Catalogue:
    """The packaged catalogue of ``language``, validated (a missing word fails at start-up)."""
    source = resources.files("fao.notifier").joinpath("templates", f"messages_{language}.yaml")
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    return Catalogue.model_validate({"language": language, **data})


@dataclass(frozen=True)
class RenderedMessage:
    """One message in three forms: for LINE (a Flex bubble, or a text message when ``bubble`` is
    None), its one-line altText and a plain text (outbox, logs)."""

    kind: MessageKind
    alt_text: str
    text: str
    bubble: dict[str, Any] | None

    def bubble_json(self) -> str:
        if self.bubble is None:
            raise ValueError(f"a {self.kind} message is a text message, it has no bubble")
        return json.dumps(self.bubble, ensure_ascii=False, separators=(",", ":"))


def utf16_units(text: str) -> int:
    """Length as LINE counts postback data and text messages (a surrogate pair counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def system_name(system: System | None, system_id: str, cat: Catalogue) -> str:
    """The name people know: Thai ``display_name_th`` (or English ``name``); for a system missing
    from the inventory its id, or the catalogue's name of Fao itself for ``PLATFORM_SYSTEM``."""
    if system is None:
        return cat.platform_name if system_id == PLATFORM_SYSTEM else system_id
    return system.display_name_th if cat.language == "th" else system.name


def postback_data(action: Literal["ack", "resolve"], incident_id: str) -> str:
    """``action=ack&incident=<id>``, URL-encoded so the gateway reads it back with ``parse_qs``."""
    return urlencode({"action": action, "incident": incident_id})


def _person(*candidates: str | None) -> str:
    """The first named person among ``candidates`` (Fao itself does not count), else ''.

    The correlator records a command's actor as ``<source>:<actor>`` ("line:สมชาย"); people read
    the name, so a known source prefix is left out."""
    for candidate in candidates:
        if not candidate or not candidate.strip() or candidate in AUTOMATIC_ACTORS:
            continue
        source, sep, name = candidate.partition(":")
        if sep and source in COMMAND_SOURCES and name.strip():
            candidate = name
        return _shorten(_one_line(candidate), 100)
    return ""


@dataclass(frozen=True)
class MessageFields:
    """The values a message shows, already formatted for one language (placeholders' values)."""

    system: str
    title: str
    cause: str
    severity: str
    started_at: str
    resolved_at: str
    duration: str
    incident: str
    zones: str
    monitors: str
    actor: str
    report: str
    count: str
    severity_level: Severity
    incident_id: str
    incident_kind: IncidentKind
    dependants: tuple[str, ...] = field(default=())
    unmute_reason: str = ""
    resolved_by: str = ""

    def placeholders(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in PLACEHOLDERS}


def message_fields(
    event: IncidentEvent, system: System | None, cat: Catalogue, kind: MessageKind
) -> MessageFields:
    """Format the event's values with ``cat``; long free texts are shortened, put on one line.

    ``actor`` is the person the message is about: who reported a manual incident (problem), who
    resolved it when that was not Fao itself (fixed), who acknowledged it (acknowledged).
    """
    incident = event.incident
    resolved_at = incident.resolved_at or event.at
    resolved_by = _person(incident.resolved_by) if incident.resolved_by else _person(event.actor)
    if kind == "fixed":
        actor = resolved_by
    elif kind == "acknowledged":
        actor = _person(event.actor, incident.acknowledged_by) or cat.someone
    else:
        actor = _person(event.actor) or (cat.someone if incident.kind == "manual" else "")
    title, cause = _one_line(incident.title), incident.cause.strip()
    # A person's report: shown as itself; its copies in title and cause are not repeated.
    report = event.text.strip() if incident.kind == "manual" and kind == "problem" else ""
    if report:
        title = "" if _one_line(report).startswith(title) else title
        cause = "" if _one_line(cause) == _one_line(report) else cause
    return MessageFields(
        system=_shorten(_one_line(system_name(system, incident.system_id, cat)), 200),
        title=_shorten(title, MAX_FIELD_CHARS),
        cause=_shorten(cause, MAX_FIELD_CHARS),
        severity=cat.severity.get(incident.severity, incident.severity),
        started_at=cat.format_datetime(incident.started_at),
        resolved_at=cat.format_datetime(resolved_at),
        duration=cat.format_duration(resolved_at - incident.started_at),
        incident=_shorten(incident.id, 100),
        zones=_shorten(", ".join(incident.zones), 200),
        monitors=str(len(incident.monitor_ids)),
        actor=actor,
        report=_shorten(report, MAX_FIELD_CHARS),
        count=str(len(incident.dependants)),
        severity_level=incident.severity,
        incident_id=incident.id,
        incident_kind=incident.kind,
        dependants=tuple(dict.fromkeys(incident.dependants)),
        unmute_reason=cat.unmuted.reason(event.text) if event.type == "unmuted" else "",
        resolved_by=resolved_by if kind == "fixed" else "",
    )


def _rows(kind: MessageKind, fields: MessageFields) -> list[str]:
    """Which labelled rows a problem or fixed message shows, in order; empty values are left out."""
    keys = ["title", "cause"]
    if fields.incident_kind in ("zone", "prober_silent"):
        keys.append("zones")
    if fields.incident_kind == "zone":
        keys.append("monitors")
    if fields.incident_kind == "manual" and kind == "problem":
        keys += ["actor", "report"]
    keys += ["severity", "started_at"]
    if kind == "fixed":
        keys += ["resolved_at", "duration"]
    keys.append("incident")
    return [key for key in keys if getattr(fields, key)]


def _fill(template: str, fields: MessageFields) -> str:
    return _one_line(template.format_map(fields.placeholders()))


def _dependants_line(kind: MessageKind, fields: MessageFields, cat: Catalogue) -> str:
    if not fields.dependants:
        return ""
    return _fill(cat.dependants.problem if kind == "problem" else cat.dependants.fixed, fields)


def _dependant_ids(fields: MessageFields, cat: Catalogue) -> str:
    """At most ``MAX_DEPENDANTS_SHOWN`` ids, then "and N more"."""
    shown = ", ".join(fields.dependants[:MAX_DEPENDANTS_SHOWN])
    rest = len(fields.dependants) - MAX_DEPENDANTS_SHOWN
    if rest > 0:
        shown += " " + cat.dependants.more.format_map({**fields.placeholders(), "count": str(rest)})
    return shown


def _resolved_by_line(fields: MessageFields, cat: Catalogue) -> str:
    return _fill(cat.resolved_by, fields) if fields.resolved_by else ""


def _look(kind: MessageKind, fields: MessageFields, cat: Catalogue) -> _Look:
    return (cat.problem if kind == "problem" else cat.fixed).of(fields.incident_kind)


def build_alt_text(kind: MessageKind, fields: MessageFields, cat: Catalogue) -> str:
    """The one-line summary: notification text, chat-list preview and what old clients show.

    The kind's template, then why it comes now (unmuted), the dependants' count and who resolved it.
    """
    if kind == "acknowledged":
        return _shorten(_fill(cat.acknowledged, fields), MAX_ALT_TEXT_CHARS)
    parts = [
        _fill(_look(kind, fields, cat).alt_text, fields),
        fields.unmute_reason,
        _dependants_line(kind, fields, cat),
        _resolved_by_line(fields, cat),
    ]
    return _shorten(" · ".join(part for part in parts if part), MAX_ALT_TEXT_CHARS)


def build_plain_text(kind: MessageKind, fields: MessageFields, cat: Catalogue) -> str:
    """The same content as the bubble, as lines of text (outbox, logs, dashboard)."""
    if kind == "acknowledged":
        return _shorten(_fill(cat.acknowledged, fields), MAX_TEXT_CHARS)
    labels = cat.labels.model_dump()
    lines = [_look(kind, fields, cat).header]
    if fields.unmute_reason:
        lines.append(fields.unmute_reason)
    lines.append(f"{labels['system']}: {fields.system}")
    lines += [f"{labels[key]}: {getattr(fields, key)}" for key in _rows(kind, fields)]
    if dependants := _dependants_line(kind, fields, cat):
        lines.append(f"{dependants} ({_dependant_ids(fields, cat)})")
    if resolved_by := _resolved_by_line(fields, cat):
        lines.append(resolved_by)
    return "\n".join(lines)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "wrap": True, **style}


def _row(label: str, value: str, color: str = TEXT_COLOR) -> dict[str, Any]:
    return {
        "type": "box",
        "layout": "baseline",
        "spacing": "sm",
        "contents": [
            _text(label, size="sm", color=LABEL_COLOR, flex=3),
            _text(value, size="sm", color=color, flex=7),
        ],
    }


def _button(action: Literal["ack", "resolve"], incident_id: str, cat: Catalogue) -> dict[str, Any]:
    words = cat.buttons.ack if action == "ack" else cat.buttons.resolve
    return {
        "type": "button",
        "style": "primary" if action == "ack" else "secondary",
        "height": "sm",
        "action": {
            "type": "postback",
            "label": words.label,
            "data": postback_data(action, incident_id),
            "displayText": words.display_text,
        },
    }


def build_bubble(kind: MessageKind, fields: MessageFields, cat: Catalogue) -> dict[str, Any]:
    """The Flex bubble of a problem or fixed message, as a dict (``FlexContainer.from_dict`` accepts it)."""
    if kind == "acknowledged":
        raise ValueError("an acknowledged message is a text message, not a bubble")
    labels = cat.labels.model_dump()
    body: list[dict[str, Any]] = [_text(fields.system, weight="bold", size="lg", color=TEXT_COLOR)]
    if fields.unmute_reason:
        body.append(_text(fields.unmute_reason, size="sm", weight="bold", color=NOTE_COLOR, margin="sm"))
    body.append({"type": "separator", "margin": "md"})
    for key in _rows(kind, fields):
        color = SEVERITY_COLORS[fields.severity_level] if key == "severity" else TEXT_COLOR
        body.append(_row(labels[key], getattr(fields, key), color))
    if dependants := _dependants_line(kind, fields, cat):
        body.append({"type": "separator", "margin": "md"})
        body.append(_text(dependants, size="sm", weight="bold", color=NOTE_COLOR, margin="md"))
        body.append(_text(_dependant_ids(fields, cat), size="xs", color=LABEL_COLOR))
    if resolved_by := _resolved_by_line(fields, cat):
        body.append(_text(resolved_by, size="sm", color=TEXT_COLOR, margin="md"))
    header_color = PROBLEM_COLORS[fields.incident_kind] if kind == "problem" else FIXED_COLOR
    bubble: dict[str, Any] = {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": header_color,
            "paddingAll": "12px",
            "contents": [_text(_look(kind, fields, cat).header, weight="bold", size="md", color="#FFFFFF")],
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
    }
    incident_id = fields.incident_id
    buttons_fit = all(
        utf16_units(postback_data(action, incident_id)) <= MAX_POSTBACK_DATA_UNITS
        for action in ("ack", "resolve")
    )
    if kind == "problem" and buttons_fit:
        bubble["footer"] = {
            "type": "box",
            "layout": "horizontal",
            "spacing": "sm",
            "contents": [_button("ack", incident_id, cat), _button("resolve", incident_id, cat)],
        }
    return bubble


def render_event(
    event: IncidentEvent, system: System | None, catalogue: Catalogue, kind: MessageKind | None = None
) -> RenderedMessage:
    """The ``kind`` message of ``event`` (default: ``should_send(event)``; ``ValueError`` when that
    says the event is not sent)."""
    kind = kind or should_send(event)
    if kind is None:
        raise ValueError(f"{event.type!r} events of this incident are not sent (see should_send)")
    fields = message_fields(event, system, catalogue, kind)
    alt_text = build_alt_text(kind, fields, catalogue)
    if kind == "acknowledged":
        return RenderedMessage(
            kind=kind, alt_text=alt_text, text=build_plain_text(kind, fields, catalogue), bubble=None
        )
    message = RenderedMessage(
        kind=kind,
        alt_text=alt_text,
        text=build_plain_text(kind, fields, catalogue),
        bubble=build_bubble(kind, fields, catalogue),
    )
    size = len(message.bubble_json().encode())
    if size > MAX_BUBBLE_BYTES:  # cannot happen with the field limits above; never send it
        raise ValueError(f"rendered bubble is {size} bytes, over LINE's {MAX_BUBBLE_BYTES}")
    return message


NoticeKind = Literal["delivery_failing", "delivery_recovered"]


def render_delivery_notice(
    kind: NoticeKind, cat: Catalogue, *, since: datetime, now: datetime, undelivered: int
) -> str:
    """The one-line text of a notice to the platform team: LINE deliveries failing since ``since``
    (``undelivered`` messages waiting), or working again after failing from ``since`` to ``now``."""
    template = cat.delivery.failing if kind == "delivery_failing" else cat.delivery.recovered
    values = dict.fromkeys(PLACEHOLDERS, "")
    values.update(
        started_at=cat.format_datetime(since),
        resolved_at=cat.format_datetime(now),
        duration=cat.format_duration(now - since),
        count=str(undelivered),
    )
    return _shorten(_one_line(template.format_map(values)), MAX_TEXT_CHARS)


ESCALATION_COLOR: Final = "#BF360C"
MAX_REFERENCE_CHARS: Final = 40


def render_escalation(
    incident: Incident, system: System | None, cat: Catalogue, *, waited: timedelta, reminder: int = 0
) -> RenderedMessage:
    """The message of an escalation step: ``incident`` (still open) has not been acknowledged for
    ``waited``; ``reminder`` > 0 when it is the step's n-th reminder. A Flex bubble with the same
    Acknowledge / Resolve buttons (same postback data) as the problem message, so whoever it
    reaches can act on it."""
    # The escalation as the (never published) event it stands for, to format the same fields.
    event = IncidentEvent(
        event_id=UUID(int=0), type="escalated", at=incident.started_at + waited, incident=incident
    )
    fields = replace(
        message_fields(event, system, cat, "escalation"),
        duration=cat.format_duration(waited),
        count=str(reminder),
    )
    words = cat.escalation
    reminder_line = _fill(words.reminder, fields) if reminder > 0 else ""
    alt_text = _shorten(
        " · ".join(part for part in (_fill(words.alt_text, fields), reminder_line) if part),
        MAX_ALT_TEXT_CHARS,
    )
    labels = cat.labels.model_dump()
    keys = [key for key in ("title", "cause", "severity", "started_at") if getattr(fields, key)]
    rows = [(key, labels[key], getattr(fields, key)) for key in keys]
    rows += [("waiting", words.waiting, fields.duration), ("incident", labels["incident"], fields.incident)]
    lines = [
        words.header,
        *([reminder_line] if reminder_line else []),
        f"{labels['system']}: {fields.system}",
    ]
    lines += [f"{label}: {value}" for _, label, value in rows]
    body: list[dict[str, Any]] = [_text(fields.system, weight="bold", size="lg", color=TEXT_COLOR)]
    if reminder_line:
        body.append(_text(reminder_line, size="sm", weight="bold", color=NOTE_COLOR, margin="sm"))
    body.append({"type": "separator", "margin": "md"})
    for key, label, value in rows:
        color = SEVERITY_COLORS[fields.severity_level] if key == "severity" else TEXT_COLOR
        body.append(_row(label, value, color))
    bubble: dict[str, Any] = {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": ESCALATION_COLOR,
            "paddingAll": "12px",
            "contents": [_text(words.header, weight="bold", size="md", color="#FFFFFF")],
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
    }
    if all(
        utf16_units(postback_data(action, incident.id)) <= MAX_POSTBACK_DATA_UNITS
        for action in ("ack", "resolve")
    ):
        bubble["footer"] = {
            "type": "box",
            "layout": "horizontal",
            "spacing": "sm",
            "contents": [_button("ack", incident.id, cat), _button("resolve", incident.id, cat)],
        }
    return RenderedMessage(kind="escalation", alt_text=alt_text, text="\n".join(lines), bubble=bubble)


def render_report_resolved(
    references: Sequence[str], resolved_at: datetime, cat: Catalogue
) -> RenderedMessage:
    """The text message to a person who reported a problem to the Official Account: their report
    (``references``: the reference numbers they were given) is resolved, and when. Nothing else:
    the catalogue's template may use only ``REPORT_PLACEHOLDERS``."""
    shown = ", ".join(dict.fromkeys(_shorten(_one_line(r), MAX_REFERENCE_CHARS) for r in references))
    values = {"reference": shown, "resolved_at": cat.format_datetime(resolved_at)}
    text = _shorten(_one_line(cat.reports.resolved.format_map(values)), MAX_TEXT_CHARS)
    return RenderedMessage(kind="report_resolved", alt_text=text, text=text, bubble=None)
