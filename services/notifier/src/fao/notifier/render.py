"""Incident events rendered as LINE messages: a Flex bubble, its one-line altText and a plain text.

Pure functions over the event, the system and a message catalogue. The words live in
``templates/messages_<language>.yaml`` (Thai by default, English as an option); this module only
arranges them. Limits kept here (LINE Messaging API reference):

- altText at most 1500 characters, on one line, naming the system;
- a bubble's JSON at most 30 KB (titles and causes are shortened to keep far below it);
- postback ``data`` at most 300 UTF-16 code units; buttons are left out rather than exceed it.

Only ``opened`` and ``resolved`` events are rendered (``RENDERED_TYPES``); the opened message
carries the "acknowledge" and "resolve" postback buttons that the gateway turns into commands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Final, Literal
from urllib.parse import urlencode

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fao.notifier.settings import Language
from fao.runtime.thai import BANGKOK, format_thai_datetime, format_thai_duration
from fao.schemas import IncidentEvent, IncidentEventType, Severity, System

RENDERED_TYPES: Final[frozenset[IncidentEventType]] = frozenset({"opened", "resolved"})

MAX_ALT_TEXT_CHARS: Final = 1500
MAX_BUBBLE_BYTES: Final = 30 * 1024
MAX_POSTBACK_DATA_UNITS: Final = 300
MAX_FIELD_CHARS: Final = 400  # title and cause, each; keeps the bubble far below 30 KB

HEADER_COLORS: Final[dict[str, str]] = {"opened": "#C62828", "resolved": "#2E7D32"}
SEVERITY_COLORS: Final[dict[Severity, str]] = {"critical": "#B71C1C", "major": "#E65100", "minor": "#F9A825"}
LABEL_COLOR: Final = "#8C8C8C"
TEXT_COLOR: Final = "#333333"

RenderedType = Literal["opened", "resolved"]

# The values a catalogue's altText templates may use, as ``{name}``.
PLACEHOLDERS: Final = (
    "system",
    "title",
    "cause",
    "severity",
    "started_at",
    "resolved_at",
    "duration",
    "incident",
)


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


class _PerType(_Strict):
    opened: str
    resolved: str

    def of(self, event_type: RenderedType) -> str:
        return self.opened if event_type == "opened" else self.resolved


class Catalogue(_Strict):
    """The words of one language, as loaded from ``templates/messages_<language>.yaml``."""

    language: Language
    dates: Literal["thai", "gregorian"]
    header: _PerType
    alt_text: _PerType
    labels: _Labels
    severity: dict[Severity, str]
    buttons: _Buttons
    calendar: _Calendar | None = None

    @model_validator(mode="after")
    def _templates_use_known_placeholders(self) -> Catalogue:
        blanks = dict.fromkeys(PLACEHOLDERS, "")
        for event_type in ("opened", "resolved"):
            try:
                self.alt_text.of(event_type).format_map(blanks)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"alt_text.{event_type}: unknown or malformed placeholder {exc}") from exc
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
    """One message in three forms: the Flex bubble for LINE, its altText and a plain text."""

    event_type: RenderedType
    alt_text: str
    text: str
    bubble: dict[str, Any]

    def bubble_json(self) -> str:
        return json.dumps(self.bubble, ensure_ascii=False, separators=(",", ":"))


def utf16_units(text: str) -> int:
    """Length as LINE counts postback data and text messages (a surrogate pair counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def system_name(system: System | None, system_id: str, language: Language) -> str:
    """The name people know: Thai ``display_name_th`` (or English ``name``), else the id."""
    if system is None:
        return system_id
    return system.display_name_th if language == "th" else system.name


def postback_data(action: Literal["ack", "resolve"], incident_id: str) -> str:
    """``action=ack&incident=<id>``, URL-encoded so the gateway reads it back with ``parse_qs``."""
    return urlencode({"action": action, "incident": incident_id})


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
    severity_level: Severity
    incident_id: str

    def placeholders(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in PLACEHOLDERS}


def message_fields(event: IncidentEvent, system: System | None, cat: Catalogue) -> MessageFields:
    """Format the event's values with ``cat``; long free texts are shortened, put on one line."""
    incident = event.incident
    resolved_at = incident.resolved_at or event.at
    return MessageFields(
        system=_shorten(_one_line(system_name(system, incident.system_id, cat.language)), 200),
        title=_shorten(_one_line(incident.title), MAX_FIELD_CHARS),
        cause=_shorten(incident.cause.strip(), MAX_FIELD_CHARS),
        severity=cat.severity.get(incident.severity, incident.severity),
        started_at=cat.format_datetime(incident.started_at),
        resolved_at=cat.format_datetime(resolved_at),
        duration=cat.format_duration(resolved_at - incident.started_at),
        incident=_shorten(incident.id, 100),
        severity_level=incident.severity,
        incident_id=incident.id,
    )


def _rows(event_type: RenderedType, fields: MessageFields) -> list[str]:
    """Which labelled rows a message shows, in order; empty values are left out."""
    keys = ["title", "cause", "severity", "started_at"]
    if event_type == "resolved":
        keys += ["resolved_at", "duration"]
    keys.append("incident")
    return [key for key in keys if getattr(fields, key)]


def build_alt_text(event_type: RenderedType, fields: MessageFields, cat: Catalogue) -> str:
    """The one-line summary: notification text, chat-list preview and what old clients show."""
    text = _one_line(cat.alt_text.of(event_type).format_map(fields.placeholders()))
    return _shorten(text, MAX_ALT_TEXT_CHARS)


def build_plain_text(event_type: RenderedType, fields: MessageFields, cat: Catalogue) -> str:
    """The same content as the bubble, as lines of text (outbox, logs, dashboard)."""
    labels = cat.labels.model_dump()
    lines = [cat.header.of(event_type), f"{labels['system']}: {fields.system}"]
    lines += [f"{labels[key]}: {getattr(fields, key)}" for key in _rows(event_type, fields)]
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


def build_bubble(event_type: RenderedType, fields: MessageFields, cat: Catalogue) -> dict[str, Any]:
    """The Flex bubble as a dict (``FlexContainer.from_dict`` accepts it)."""
    labels = cat.labels.model_dump()
    body: list[dict[str, Any]] = [
        _text(fields.system, weight="bold", size="lg", color=TEXT_COLOR),
        {"type": "separator", "margin": "md"},
    ]
    for key in _rows(event_type, fields):
        color = SEVERITY_COLORS[fields.severity_level] if key == "severity" else TEXT_COLOR
        body.append(_row(labels[key], getattr(fields, key), color))
    bubble: dict[str, Any] = {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": HEADER_COLORS[event_type],
            "paddingAll": "12px",
            "contents": [_text(cat.header.of(event_type), weight="bold", size="md", color="#FFFFFF")],
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
    }
    incident_id = fields.incident_id
    buttons_fit = all(
        utf16_units(postback_data(action, incident_id)) <= MAX_POSTBACK_DATA_UNITS
        for action in ("ack", "resolve")
    )
    if event_type == "opened" and buttons_fit:
        bubble["footer"] = {
            "type": "box",
            "layout": "horizontal",
            "spacing": "sm",
            "contents": [_button("ack", incident_id, cat), _button("resolve", incident_id, cat)],
        }
    return bubble


def render_event(event: IncidentEvent, system: System | None, catalogue: Catalogue) -> RenderedMessage:
    """The message for an ``opened`` or ``resolved`` event (``ValueError`` for other types)."""
    if event.type not in RENDERED_TYPES:
        raise ValueError(f"{event.type!r} events are not rendered (only {sorted(RENDERED_TYPES)})")
    event_type: RenderedType = "opened" if event.type == "opened" else "resolved"
    fields = message_fields(event, system, catalogue)
    message = RenderedMessage(
        event_type=event_type,
        alt_text=build_alt_text(event_type, fields, catalogue),
        text=build_plain_text(event_type, fields, catalogue),
        bubble=build_bubble(event_type, fields, catalogue),
    )
    size = len(message.bubble_json().encode())
    if size > MAX_BUBBLE_BYTES:  # cannot happen with the field limits above; never send it
        raise ValueError(f"rendered bubble is {size} bytes, over LINE's {MAX_BUBBLE_BYTES}")
    return message
