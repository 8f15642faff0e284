"""The Thai texts the gateway answers with (``templates/replies_th.yaml``), checked at load.

A text is filled with ``Replies.text(key, **values)``: only the placeholders the template names
are used, and a value (a person's name, a rejection reason) is inserted as it is, never
interpreted as a template.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Replies:
    no_user_id: str
    not_member: str
    unknown_incident: str
    already_acknowledged: str
    already_resolved: str
    rejected: str
    action_ack: str
    action_resolve: str
    someone: str
    fao_auto: str
    report_received: str
    report_pick_system: str
    other_system: str
    report_rate_limited: str
    report_expired: str
    report_text_only: str
    report_actor: str
    review_confirmed: str
    review_needs_changes: str
    review_not_member: str
    review_no_user_id: str

    def text(self, key: str, **values: object) -> str:
        template: str = getattr(self, key)
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        missing = names - values.keys()
        if missing:
            raise KeyError(f"reply {key!r} needs {sorted(missing)}")
        return template.format_map({name: str(values[name]) for name in names})

    def action(self, action: str) -> str:
        return self.action_ack if action == "ack" else self.action_resolve


@cache
def load_replies() -> Replies:
    """The Thai catalogue; a missing or extra key, or a non-text value, fails at start-up."""
    raw = yaml.safe_load(
        resources.files("fao.gateway").joinpath("templates/replies_th.yaml").read_text(encoding="utf-8")
    )
    if not isinstance(raw, dict):
        raise ValueError("replies_th.yaml must be a mapping")
    expected = {f.name for f in fields(Replies)}
    if set(raw) != expected:
        raise ValueError(
            f"replies_th.yaml keys differ: missing {expected - set(raw)}, extra {set(raw) - expected}"
        )
    if not all(isinstance(v, str) and v.strip() for v in raw.values()):
        raise ValueError("every reply in replies_th.yaml must be a non-empty text")
    return Replies(**{k: " ".join(v.split()) for k, v in raw.items()})
