"""The owner review message: a team's systems and members in one Flex bubble, with two buttons.

Sent once a quarter to each of the team's LINE groups (``fao.notifier.review``). It lists the
systems the team owns (their Thai names, or English ones with ``FAO_LANGUAGE=en``) and its members
(people whose ``teams`` include it): **names and roles only**, never a LINE user id, phone or
e-mail, since the group may hold people who are not members. The buttons answer it: postback
``action=review_ok&team=<id>&round=<round>`` ("ยืนยัน") or ``action=review_fix&…`` ("ต้องแก้ไข"),
read by the gateway (``fao.gateway.postback``).

Limits (as in ``render``): at most ``MAX_LISTED`` systems and as many members are listed, each
list ending with "และอีก N" when it is longer; names and roles are shortened; the altText stays
one line ≤ 1500 characters, the bubble's JSON ≤ 30 KB (checked), postback data ≤ 300 UTF-16 units
(team and round ids are short by their patterns; checked all the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlencode

from fao.notifier.render import (
    LABEL_COLOR,
    MAX_ALT_TEXT_CHARS,
    MAX_BUBBLE_BYTES,
    MAX_POSTBACK_DATA_UNITS,
    TEXT_COLOR,
    Catalogue,
    RenderedMessage,
    utf16_units,
)
from fao.schemas import Person, System

ReviewAction = Literal["review_ok", "review_fix"]

MAX_LISTED: Final = 15
MAX_NAME_CHARS: Final = 80
MAX_ROLE_CHARS: Final = 60
REVIEW_COLOR: Final = "#1565C0"


def review_postback_data(action: ReviewAction, team_id: str, round_id: str) -> str:
    """``action=review_ok&team=<id>&round=<round>``, URL-encoded (the gateway reads it with ``parse_qs``)."""
    return urlencode({"action": action, "team": team_id, "round": round_id})


@dataclass(frozen=True)
class ReviewContent:
    """What one team's review shows."""

    round_id: str
    team_id: str
    team_name: str
    systems: tuple[str, ...]
    """The systems' names in the catalogue's language, sorted."""
    members: tuple[str, ...]
    """"name — role" (or the name alone), sorted."""


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def review_content(
    round_id: str,
    team_id: str,
    team_name: str,
    systems: Sequence[System],
    people: Sequence[Person],
    cat: Catalogue,
) -> ReviewContent:
    """The team's systems (``system.team == team_id``) and members (``team_id in person.teams``):
    names and roles only."""
    names = sorted(
        _one_line(s.display_name_th if cat.language == "th" else s.name, MAX_NAME_CHARS)
        for s in systems
        if s.team == team_id
    )
    members = sorted(
        _one_line(p.name, MAX_NAME_CHARS)
        + (f" — {_one_line(p.role, MAX_ROLE_CHARS)}" if p.role.strip() else "")
        for p in people
        if team_id in p.teams
    )
    return ReviewContent(
        round_id, team_id, _one_line(team_name, MAX_NAME_CHARS), tuple(names), tuple(members)
    )


def _listed(items: Sequence[str], cat: Catalogue) -> list[str]:
    """At most ``MAX_LISTED`` items, then "และอีก N"; the catalogue's "nobody" for none."""
    if not items:
        return [cat.review.nobody]
    shown = [f"• {item}" for item in items[:MAX_LISTED]]
    rest = len(items) - MAX_LISTED
    if rest > 0:
        shown.append(cat.review.more.format_map({"team": "", "round": "", "count": str(rest)}))
    return shown


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "wrap": True, **style}


def _button(action: ReviewAction, content: ReviewContent, cat: Catalogue) -> dict[str, Any]:
    words = cat.review.ok if action == "review_ok" else cat.review.fix
    return {
        "type": "button",
        "style": "primary" if action == "review_ok" else "secondary",
        "height": "sm",
        "action": {
            "type": "postback",
            "label": words.label,
            "data": review_postback_data(action, content.team_id, content.round_id),
            "displayText": words.display_text,
        },
    }


def render_review(content: ReviewContent, cat: Catalogue) -> RenderedMessage:
    """The review message of one team (``ValueError`` if it could not fit LINE's limits)."""
    words = cat.review
    values = {"team": content.team_name, "round": content.round_id}
    header = words.header.format_map({**values, "count": ""})
    intro = words.intro.format_map({**values, "count": ""})
    systems_title = words.systems.format_map({**values, "count": str(len(content.systems))})
    members_title = words.members.format_map({**values, "count": str(len(content.members))})
    systems, members = _listed(content.systems, cat), _listed(content.members, cat)
    alt_text = _one_line(words.alt_text.format_map({**values, "count": ""}), MAX_ALT_TEXT_CHARS)
    text = "\n".join([header, intro, systems_title, *systems, members_title, *members])
    data = [review_postback_data(a, content.team_id, content.round_id) for a in ("review_ok", "review_fix")]
    if any(utf16_units(d) > MAX_POSTBACK_DATA_UNITS for d in data):
        raise ValueError(f"review postback data over {MAX_POSTBACK_DATA_UNITS} UTF-16 units: {data}")
    body: list[dict[str, Any]] = [
        _text(content.team_name, weight="bold", size="lg", color=TEXT_COLOR),
        _text(intro, size="sm", color=LABEL_COLOR, margin="sm"),
        {"type": "separator", "margin": "md"},
        _text(systems_title, size="sm", weight="bold", color=TEXT_COLOR, margin="md"),
        *(_text(line, size="sm", color=TEXT_COLOR) for line in systems),
        {"type": "separator", "margin": "md"},
        _text(members_title, size="sm", weight="bold", color=TEXT_COLOR, margin="md"),
        *(_text(line, size="sm", color=TEXT_COLOR) for line in members),
    ]
    bubble: dict[str, Any] = {
        "type": "bubble",
        "size": "mega",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": REVIEW_COLOR,
            "paddingAll": "12px",
            "contents": [_text(header, weight="bold", size="md", color="#FFFFFF")],
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": body},
        "footer": {
            "type": "box",
            "layout": "horizontal",
            "spacing": "sm",
            "contents": [_button("review_ok", content, cat), _button("review_fix", content, cat)],
        },
    }
    message = RenderedMessage(kind="review", alt_text=alt_text, text=text, bubble=bubble)
    size = len(message.bubble_json().encode())
    if size > MAX_BUBBLE_BYTES:  # cannot happen with the limits above; never send it
        raise ValueError(f"rendered review bubble is {size} bytes, over LINE's {MAX_BUBBLE_BYTES}")
    return message
