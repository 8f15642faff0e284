"""The digest message: many incidents of one LINE group in one Flex bubble, its altText and a text.

A digest (``fao.notifier.digest``) gathers the messages a group did not get one by one: in a storm,
or while the LINE quota runs low. Each *entry* is one such message (an incident's problem, its
acknowledgement or its end); the entries of one incident become one *line*, listed under what
happened to it first in the window:

- a problem (down; "back to normal" added when it also ended within the window, "acknowledged by
  X" when someone took it on) — under "🔴 7 ระบบขัดข้อง", most severe first;
- an end alone (its problem was told earlier) — under "✅ 12 ระบบกลับมาปกติ";
- an acknowledgement alone — under "👀 รับทราบแล้ว 2 ระบบ".

At most ``max_listed`` lines are listed in all (problems first), each section ending with "และอีก
M ระบบ" when some of its lines are left out. The words are the catalogue's (``digest`` section).

Limits (as in ``render``): altText ≤ 1500 characters on one line; the bubble's JSON ≤ 30 KB — names
are shortened to ``MAX_NAME_CHARS`` and, should the bubble still be too big, fewer lines are listed
until it fits; the plain text stays far below LINE's 5000 UTF-16 units. A digest has **no
buttons**: one Acknowledge / Resolve pair per listed incident would not fit a readable bubble, and
buttons for "all of them" would act on incidents nobody looked at. Its incidents are acknowledged
one by one (dashboard, CLI), and escalation treats them as any unacknowledged incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from fao.notifier.render import (
    FIXED_COLOR,
    LABEL_COLOR,
    MAX_ALT_TEXT_CHARS,
    MAX_BUBBLE_BYTES,
    PLACEHOLDERS,
    SEVERITY_COLORS,
    TEXT_COLOR,
    Catalogue,
    RenderedMessage,
)
from fao.schemas import Severity

EntryKind = Literal["problem", "acknowledged", "fixed"]

MAX_NAME_CHARS: Final = 80
MAX_LISTED: Final = 25
MAX_DIGEST_TEXT_CHARS: Final = 4000
PROBLEM_COLOR: Final = "#C62828"
ACKNOWLEDGED_COLOR: Final = "#546E7A"
SEVERITY_RANK: Final[dict[str, int]] = {"critical": 0, "major": 1, "minor": 2}
ICONS: Final[dict[EntryKind, str]] = {"problem": "🔴", "fixed": "✅", "acknowledged": "👀"}


@dataclass(frozen=True)
class DigestEntry:
    """One message of the digest: what happened to one incident (``kind``) and when (``at``)."""

    incident_id: str
    kind: EntryKind
    system: str
    """The system's name in the catalogue's language."""
    severity: Severity
    at: datetime
    actor: str = ""
    """Who acknowledged it (an ``acknowledged`` entry)."""


@dataclass(frozen=True)
class DigestLine:
    """One incident as the digest lists it."""

    incident_id: str
    section: EntryKind
    system: str
    severity: Severity
    at: datetime
    recovered: bool = False
    acknowledged_by: str = ""


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def digest_lines(entries: Iterable[DigestEntry]) -> list[DigestLine]:
    """One line per incident, in listing order: problems (most severe, then earliest first), then
    ends, then acknowledgements (earliest first)."""
    by_incident: dict[str, list[DigestEntry]] = {}
    for entry in sorted(entries, key=lambda e: (e.at, e.incident_id)):
        by_incident.setdefault(entry.incident_id, []).append(entry)
    lines: list[DigestLine] = []
    for incident_id, group in by_incident.items():
        kinds = {e.kind for e in group}
        section: EntryKind = (
            "problem" if "problem" in kinds else "fixed" if "fixed" in kinds else "acknowledged"
        )
        first = next(e for e in group if e.kind == section)
        acks = [e.actor for e in group if e.kind == "acknowledged" and e.actor]
        lines.append(
            DigestLine(
                incident_id=incident_id,
                section=section,
                system=_shorten(first.system, MAX_NAME_CHARS),
                severity=first.severity,
                at=first.at,
                recovered=section == "problem" and "fixed" in kinds,
                acknowledged_by=_shorten(acks[-1], MAX_NAME_CHARS) if acks and section != "fixed" else "",
            )
        )
    order: dict[EntryKind, int] = {"problem": 0, "fixed": 1, "acknowledged": 2}
    return sorted(
        lines,
        key=lambda line: (
            order[line.section],
            SEVERITY_RANK.get(line.severity, 9) if line.section == "problem" else 0,
            line.at,
            line.incident_id,
        ),
    )


@dataclass(frozen=True)
class _Section:
    kind: EntryKind
    heading: str
    shown: tuple[DigestLine, ...]
    more: str


def _fill(template: str, **values: str) -> str:
    filled = dict.fromkeys(PLACEHOLDERS, "")
    filled.update(values)
    return " ".join(template.format_map(filled).split())


def _sections(lines: Sequence[DigestLine], cat: Catalogue, max_listed: int) -> list[_Section]:
    words = {
        "problem": cat.digest.problem,
        "fixed": cat.digest.fixed,
        "acknowledged": cat.digest.acknowledged,
    }
    sections: list[_Section] = []
    room = max_listed
    for kind in ("problem", "fixed", "acknowledged"):
        of_kind = [line for line in lines if line.section == kind]
        if not of_kind:
            continue
        shown = tuple(of_kind[: max(room, 0)])
        room -= len(shown)
        rest = len(of_kind) - len(shown)
        more = _fill(cat.digest.more, count=str(rest)) if rest > 0 else ""
        sections.append(_Section(kind, _fill(words[kind], count=str(len(of_kind))), shown, more))
    return sections


def _notes(line: DigestLine, cat: Catalogue) -> list[str]:
    notes = [cat.digest.recovered] if line.recovered else []
    if line.acknowledged_by:
        notes.append(_fill(cat.digest.acknowledged_by, actor=line.acknowledged_by))
    return notes


def _line_text(line: DigestLine, cat: Catalogue) -> str:
    severity = cat.severity.get(line.severity, line.severity)
    text = f"{line.system} ({severity})"
    return " — ".join([text, *_notes(line, cat)])


def _footnote(cat: Catalogue, window: timedelta, digest_only: bool) -> str:
    template = cat.digest.digest_only if digest_only else cat.digest.storm
    return _fill(template, duration=cat.format_duration(window))


def _alt_text(lines: Sequence[DigestLine], cat: Catalogue, max_listed: int) -> str:
    """The sections on one line; fewer names listed (never a cut "and M more") until it fits."""
    listed = max_listed
    while True:
        parts = []
        for section in _sections(lines, cat, listed):
            names = ", ".join(_line_text(line, cat) for line in section.shown)
            part = f"{section.heading}: {names}" if names else section.heading
            parts.append(f"{part} {section.more}".strip())
        text = " · ".join(parts)
        if len(text) <= MAX_ALT_TEXT_CHARS or listed == 0:
            return text if len(text) <= MAX_ALT_TEXT_CHARS else text[: MAX_ALT_TEXT_CHARS - 1] + "…"
        listed -= 1


def _plain_text(sections: Sequence[_Section], cat: Catalogue, footnote: str) -> str:
    out: list[str] = []
    for section in sections:
        out.append(section.heading)
        out += [f"{ICONS[section.kind]} {_line_text(line, cat)}" for line in section.shown]
        if section.more:
            out.append(section.more)
    out.append(footnote)
    text = "\n".join(out)
    return text if len(text) <= MAX_DIGEST_TEXT_CHARS else text[: MAX_DIGEST_TEXT_CHARS - 1] + "…"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "wrap": True, **style}


def _bubble_line(line: DigestLine, cat: Catalogue) -> list[dict[str, Any]]:
    severity = cat.severity.get(line.severity, line.severity)
    row = {
        "type": "box",
        "layout": "baseline",
        "spacing": "sm",
        "contents": [
            _text(f"{ICONS[line.section]} {line.system}", size="sm", color=TEXT_COLOR, flex=7),
            _text(severity, size="sm", color=SEVERITY_COLORS.get(line.severity, TEXT_COLOR), flex=3),
        ],
    }
    notes = _notes(line, cat)
    return [row, _text(" · ".join(notes), size="xs", color=LABEL_COLOR)] if notes else [row]


def _bubble(sections: Sequence[_Section], cat: Catalogue, footnote: str) -> dict[str, Any]:
    colors = {"problem": PROBLEM_COLOR, "fixed": FIXED_COLOR, "acknowledged": ACKNOWLEDGED_COLOR}
    body: list[dict[str, Any]] = []
    for index, section in enumerate(sections):
        if index > 0:
            body.append({"type": "separator", "margin": "md"})
            body.append(_text(section.heading, weight="bold", size="md", color=colors[section.kind]))
        for line in section.shown:
            body += _bubble_line(line, cat)
        if section.more:
            body.append(_text(section.more, size="sm", color=LABEL_COLOR))
    body.append({"type": "separator", "margin": "md"})
    body.append(_text(footnote, size="xs", color=LABEL_COLOR, margin="md"))
    return {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": colors[sections[0].kind],
            "paddingAll": "12px",
            "contents": [_text(sections[0].heading, weight="bold", size="md", color="#FFFFFF")],
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
    }


def render_digest(
    entries: Sequence[DigestEntry],
    cat: Catalogue,
    *,
    window: timedelta,
    digest_only: bool = False,
    max_listed: int = 10,
) -> RenderedMessage:
    """The digest of ``entries`` (at least one): a Flex bubble without buttons, its altText and a
    plain text. ``window`` is how long the digest gathered messages (said in its footnote, which
    also says why: a storm, or ``digest_only`` because the LINE quota runs low)."""
    if not entries:
        raise ValueError("a digest needs at least one entry")
    lines = digest_lines(entries)
    footnote = _footnote(cat, window, digest_only)
    listed = max(1, min(max_listed, MAX_LISTED))
    while True:
        sections = _sections(lines, cat, listed)
        message = RenderedMessage(
            kind="digest",
            alt_text=_alt_text(lines, cat, listed),
            text=_plain_text(sections, cat, footnote),
            bubble=_bubble(sections, cat, footnote),
        )
        if len(message.bubble_json().encode()) <= MAX_BUBBLE_BYTES or listed == 1:
            return message
        listed -= 1
