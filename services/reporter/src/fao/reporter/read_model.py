"""The reporter's read model: one ``report_facts`` document per incident, kept from the incident stream.

The reporter is the only writer of ``report_facts``. A fact is replaced only by an event at least
as new as the one it came from, so redelivered or replayed events never move it backwards, and
the whole collection can be rebuilt by replaying the stream from the start (``fao report
--rebuild``, `fao.reporter.replay`).

Incidents of the platform itself (``PLATFORM_SYSTEM``: a zone's path failing, silent probers) are
not downtime of any ministry system and are left out of the availability read model.

Reading is tolerant: a stored fact that does not validate (an edited document, a bug in an older
release) is logged, reported on the report (`Facts.skipped`) and left out, never fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

import structlog
from pydantic import ValidationError
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.availability import (
    IncidentFact,
    LeftGroup,
    MaintenanceSpan,
    OwnerReviewState,
    ReviewTeam,
    SystemInfo,
    UnownedSystem,
)
from fao.runtime import reachability
from fao.runtime.inventory import SYSTEMS, TEAMS, from_doc
from fao.runtime.owner_review import latest_review
from fao.runtime.store import Document, IndexSpec
from fao.schemas import PLATFORM_SYSTEM, IncidentEvent, System, Team

log = structlog.get_logger()

FACTS: Final = "report_facts"
INDEXES: Final = [IndexSpec(FACTS, [("started_at", 1)])]
_STORE_ONLY: Final = ("_id", "event_at")
# Documents per bulk write: FerretDB v1 hangs on one write of ~100+ documents (docs/architecture.md §7).
WRITE_CHUNK: Final = 50


def fact_from_event(event: IncidentEvent) -> IncidentFact:
    incident = event.incident
    return IncidentFact(
        incident_id=incident.id,
        system_id=incident.system_id,
        title=incident.title,
        severity=incident.severity,
        started_at=incident.started_at,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        status=incident.status,
        kind=incident.kind,
        muted=incident.muted,
        alerted=incident.alerted,
        parent_incident_id=incident.parent_incident_id,
        maintenance=tuple(MaintenanceSpan(start=s.start, end=s.end) for s in incident.maintenance),
    )


def fact_document(fact: IncidentFact, event_at: datetime) -> Document:
    return {"_id": fact.incident_id, **fact.model_dump(mode="python"), "event_at": event_at}


@dataclass
class Facts:
    """Facts read from the store, and the ones that could not be read ("<id>: <reason>")."""

    facts: list[IncidentFact] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_fact(doc: Document) -> IncidentFact:
    """A stored document as a fact; ValidationError when it is not one."""
    return IncidentFact.model_validate({k: v for k, v in doc.items() if k not in _STORE_ONLY})


class FactStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def record(self, event: IncidentEvent) -> bool:
        """Fold one event into its incident's fact; False when an equal or newer one is stored
        (or when the incident is the platform's own, which reports do not count)."""
        if event.incident.system_id == PLATFORM_SYSTEM:
            return False
        fact = fact_from_event(event)
        current = await self._db[FACTS].find_one({"_id": fact.incident_id})
        if (
            current is not None
            and isinstance(current.get("event_at"), datetime)
            and current["event_at"] > event.at
        ):
            return False
        await self._db[FACTS].replace_one(
            {"_id": fact.incident_id}, fact_document(fact, event.at), upsert=True
        )
        return True

    async def replace(self, events: Sequence[IncidentEvent]) -> int:
        """Store the facts of `events` (one per incident) whatever is stored now: a rebuild from
        the stream. Platform incidents are left out. Returns how many facts were written."""
        docs = [
            fact_document(fact_from_event(e), e.at) for e in events if e.incident.system_id != PLATFORM_SYSTEM
        ]
        for chunk in range(0, len(docs), WRITE_CHUNK):
            await self._db[FACTS].bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[chunk : chunk + WRITE_CHUNK]],
                ordered=False,
            )
        return len(docs)

    async def facts(self, start: datetime | None = None, end: datetime | None = None) -> Facts:
        """Facts of incidents overlapping `[start, end)` (all without bounds); unreadable ones skipped."""
        query: Document = {}
        if end is not None:
            query["started_at"] = {"$lt": end}
        if start is not None:
            query["$or"] = [{"resolved_at": None}, {"resolved_at": {"$gte": start}}]
        found = Facts()
        async for doc in self._db[FACTS].find(query):
            try:
                found.facts.append(read_fact(doc))
            except ValidationError as exc:
                reason = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
                    for e in exc.errors()[:3]
                )
                log.warning("fact_unreadable", fact=str(doc.get("_id")), reason=reason)
                found.skipped.append(f"{doc.get('_id')}: {reason}")
        return found

    async def owner_review(self, until: datetime) -> OwnerReviewState | None:
        """The latest owner review round sent by ``until`` and the teams that have not confirmed it
        (as of now), with their names; the systems without a reachable owner and the LINE groups
        the bot has left (as of now, ``fao.runtime.reachability``); None when there is nothing
        of these (before the first round, with every team reachable)."""
        review = await latest_review(self._db, until)
        team_docs = await self._db[TEAMS].find({}).to_list()
        names = {str(doc["_id"]): doc.get("name") for doc in team_docs}
        unowned, left = await self._reachability(team_docs)
        if review is None and not (unowned or left):
            return None
        state = OwnerReviewState(unowned_systems=unowned, left_groups=left)
        if review is None:
            return state
        unconfirmed = []
        for team in review.unconfirmed():
            status = "needs_changes" if review.answers.get(team) is not None else "not_confirmed"
            name = names.get(team)
            unconfirmed.append(ReviewTeam(team=team, team_name=str(name) if name else None, status=status))
        return state.model_copy(
            update={
                "round_id": review.id,
                "sent_at": review.sent_at,
                "team_count": len(review.teams),
                "unconfirmed": tuple(unconfirmed),
            }
        )

    async def _reachability(
        self, team_docs: Sequence[Document]
    ) -> tuple[tuple[UnownedSystem, ...], tuple[LeftGroup, ...]]:
        teams = []
        for doc in team_docs:
            try:
                teams.append(from_doc(Team, doc))
            except ValidationError:
                log.warning("team_unreadable", team=str(doc.get("_id")))
        systems = []
        for doc in await self._db[SYSTEMS].find({}).to_list():
            try:
                systems.append(from_doc(System, doc))
            except ValidationError:
                log.warning("system_unreadable", system=str(doc.get("_id")))
        groups = await reachability.read_groups(self._db)
        broken = await reachability.read_broken(self._db)
        unowned = tuple(
            UnownedSystem(
                system=u.system.id,
                name=u.system.name,
                name_th=u.system.name_th,
                team=u.team.id,
                team_name=u.team.name,
            )
            for u in reachability.unowned_systems(teams, systems, groups, broken)
        )
        left_found = reachability.left_groups(teams, groups)
        group_names: dict[str, object] = {}
        if left_found:
            wanted = [g.group for g in left_found]
            async for doc in self._db[reachability.LINE_GROUPS].find({"_id": {"$in": wanted}}):
                group_names[str(doc["_id"])] = doc.get("name")
        left = tuple(
            LeftGroup(
                group=g.group,
                group_name=str(group_names[g.group]) if group_names.get(g.group) else None,
                team=g.team.id,
                team_name=g.team.name,
            )
            for g in left_found
        )
        return unowned, left

    async def systems(self) -> list[SystemInfo]:
        """The applied inventory's systems with their team's name (unreadable ones skipped)."""
        teams: dict[str, str] = {}
        for doc in await self._db[TEAMS].find({}).to_list():
            try:
                team = from_doc(Team, doc)
            except ValidationError:
                log.warning("team_unreadable", team=str(doc.get("_id")))
                continue
            teams[team.id] = team.name
        systems = []
        for doc in await self._db[SYSTEMS].find({}).to_list():
            try:
                system = from_doc(System, doc)
            except ValidationError:
                log.warning("system_unreadable", system=str(doc.get("_id")))
                continue
            systems.append(
                SystemInfo(
                    id=system.id,
                    name=system.name,
                    name_th=system.name_th,
                    team=system.team,
                    team_name=teams.get(system.team),
                    sla_target=None if system.sla_target is None else Decimal(str(system.sla_target)),
                )
            )
        return sorted(systems, key=lambda s: s.id)
