"""Where one delivery goes and where it falls back to (``TargetPlan``), as routing decides and the
delivery record keeps it.

A team's ``channels`` policy (``ChannelPolicy``: ``primary``, ``fallbacks``, ``fallback_after``)
becomes one ``TargetPlan`` per target of the first channel that has targets (normally LINE groups):
the message is recorded for those; the *fallback targets* (every target of the team's other
channels, in policy order) are recorded only when the primary delivery fails (``fallback_after``
failed tries, a permanent error, a broken target, LINE's monthly limit). The plan is stored in the
delivery record (``plan_fields``), so a worker needs no routing to fall back, and a fallback
delivery is recorded with the same deterministic claim id (``<event_id>:<channel>:<target>``)
whoever records it: once.

``team_version`` fingerprints the team's applied config: a broken-target mark made under one
version does not hold for a delivery routed under another (``fao apply`` changed the team).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fao.schemas import Incident, Team


@dataclass(frozen=True)
class Target:
    """One address on one channel; ``options`` are the channel's per-target settings (a webhook's
    ``secret_env``)."""

    channel: str
    address: str
    options: Mapping[str, str] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {"channel": self.channel, "target": self.address, "options": dict(self.options)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Target:
        return cls(str(doc["channel"]), str(doc["target"]), dict(doc.get("options") or {}))


@dataclass(frozen=True)
class TargetPlan:
    """A delivery's target, the team it is for, and its fallbacks."""

    target: Target
    team: str
    team_version: str
    fallbacks: tuple[Target, ...] = ()
    fallback_after: int = 3

    def fields(self) -> dict[str, Any]:
        """What the delivery record keeps of the plan (beside ``channel`` and ``target``)."""
        return {
            "options": dict(self.target.options),
            "team": self.team,
            "team_version": self.team_version,
            "fallbacks": [t.to_doc() for t in self.fallbacks],
            "fallback_after": self.fallback_after,
        }

    def fallback_plan(self, target: Target) -> TargetPlan:
        """The plan of a fallback delivery: the same team, no further fallbacks."""
        return TargetPlan(target, self.team, self.team_version, (), self.fallback_after)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> TargetPlan | None:
        """The plan of a delivery record; None for a record without one (an older notifier's, an
        unroutable one)."""
        if not doc.get("team_version") or doc.get("target") is None:
            return None
        return cls(
            Target(str(doc["channel"]), str(doc["target"]), dict(doc.get("options") or {})),
            str(doc.get("team") or ""),
            str(doc["team_version"]),
            tuple(Target.from_doc(f) for f in doc.get("fallbacks") or ()),
            int(doc.get("fallback_after") or 1),
        )


def team_version(team: Team) -> str:
    """A short fingerprint of the team's applied config (any change gives another)."""
    return hashlib.sha256(team.model_dump_json().encode()).hexdigest()[:16]


def incident_summary(incident: Incident) -> dict[str, Any]:
    """The incident essentials a delivery record keeps (the webhook body carries them)."""
    return incident.model_dump(
        mode="json",
        include={
            "id",
            "system_id",
            "kind",
            "severity",
            "status",
            "title",
            "cause",
            "started_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "resolved_by",
            "zones",
            "dependants",
        },
    )
