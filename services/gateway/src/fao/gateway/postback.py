"""Postback ``data`` the gateway understands, and what it writes into its own quick replies.

- ``action=ack&incident=<id>`` / ``action=resolve&incident=<id>``: the Acknowledge and Resolve
  buttons of the notifier's problem messages (``fao.notifier.render.postback_data``);
- ``action=report&report=<pending report id>&system=<system id>``: a quick-reply item of an
  Official Account report (``system`` empty: "อื่น ๆ", none of the listed systems);
- ``action=review_ok&team=<team id>&round=<round>`` / ``action=review_fix&…``: the "ยืนยัน" and
  "ต้องแก้ไข" buttons of the quarterly owner review (``fao.notifier.render_review``).

Anything else is ``None`` (ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qs, urlencode

from fao.runtime.owner_review import ROUND_ID

INCIDENT_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
SYSTEM_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
REPORT_ID: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclass(frozen=True)
class IncidentAction:
    action: Literal["ack", "resolve"]
    incident_id: str


@dataclass(frozen=True)
class SystemPick:
    report_id: str
    system_id: str | None
    """None: the user picked "other"."""


@dataclass(frozen=True)
class ReviewAnswer:
    """A team's answer to the owner review of ``round_id``: confirmed (``ok``) or needs changes."""

    ok: bool
    team_id: str
    round_id: str


Postback = IncidentAction | SystemPick | ReviewAnswer


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values is not None and len(values) == 1 else None


def parse_postback(data: str) -> Postback | None:
    try:
        fields = parse_qs(data, keep_blank_values=True, strict_parsing=True, max_num_fields=10)
    except ValueError:
        return None
    action = _one(fields, "action")
    if action in ("ack", "resolve"):
        incident = _one(fields, "incident")
        if incident is None or not INCIDENT_ID.fullmatch(incident):
            return None
        return IncidentAction("ack" if action == "ack" else "resolve", incident)
    if action == "report":
        report, system = _one(fields, "report"), _one(fields, "system")
        if report is None or not REPORT_ID.fullmatch(report) or system is None:
            return None
        if system and not SYSTEM_ID.fullmatch(system):
            return None
        return SystemPick(report, system or None)
    if action in ("review_ok", "review_fix"):
        team, round_id = _one(fields, "team"), _one(fields, "round")
        if (
            team is None
            or not SYSTEM_ID.fullmatch(team)
            or round_id is None
            or not ROUND_ID.fullmatch(round_id)
        ):
            return None
        return ReviewAnswer(action == "review_ok", team, round_id)
    return None


def pick_data(report_id: str, system_id: str | None) -> str:
    """The postback data of one quick-reply item of report ``report_id``."""
    return urlencode({"action": "report", "report": report_id, "system": system_id or ""})
