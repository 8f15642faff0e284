"""``fao doctor``: what in the inventory and its monitoring needs a person's attention, each with
the fix to make.

``diagnose`` is a pure function over a ``Snapshot`` (the applied inventory and what the correlator
knows of each monitor); ``snapshot`` reads it from MongoDB. Findings:

- a system without a monitor (nobody would notice it fail);
- a monitor with no result recorded (no prober runs its zone, or it is new), and one whose every
  remembered result failed (it has never worked as configured: a wrong URL, keyword or port);
- a zone that monitors need and no prober reports from (silent for ``SILENT_AFTER``);
- a team nobody can reach: no LINE group, e-mail or webhook; a team whose LINE group the bot has
  left (``line_groups``, recorded by the gateway), or was never seen in while it is seen in others;
  a LINE group, e-mail address or webhook the notifier marked broken (``broken_targets``: it refused
  for good, deliveries to it are skipped); the systems of a team none of whose channels works are
  named: they have no reachable owner (``fao.runtime.reachability``, shared with the monthly
  report);
- a person without a LINE user id (cannot be recognised acknowledging, nor escalated to);
- an escalation step naming a person or team no longer stored (erased with ``fao people forget``,
  or a document edited by hand): the step skips them, and the config files that still name them
  would be refused;
- a person who left the config longer ago than the retention (``fao people forget`` them);
- a maintenance window that never ends: a one-off window longer than ``LONG_WINDOW``, or a weekly
  one covering more than half of every week (real outages would be hidden);
- in the latest quarterly owner review that was sent (``fao.runtime.owner_review``), a team with a
  LINE group that was asked and has not confirmed its systems and members (a warning), or that
  answered "ต้องแก้ไข" (a problem, naming who asked and when).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import nats
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.cli.apply import DEPARTED
from fao.cli.nats_errors import quiet
from fao.runtime.inventory import (
    MAINTENANCE,
    MONITORS,
    PEOPLE,
    SYSTEMS,
    TEAMS,
    from_doc,
    maintenance_from_doc,
)
from fao.runtime.owner_review import ReviewRound, latest_review
from fao.runtime.reachability import Broken, read_broken, read_groups, targets
from fao.runtime.states import state_docs
from fao.runtime.store import Document, connect
from fao.runtime.thai import BANGKOK
from fao.schemas import MaintenanceWindow, Monitor, Person, System, Team

CHANNEL_NAMES: Final = {"line": "LINE group", "email": "e-mail address", "webhook": "webhook"}
LONG_WINDOW: Final = timedelta(days=7)
# Systems named in one finding; more are counted.
LISTED: Final = 10
SILENT_AFTER: Final = timedelta(minutes=10)
WEEK: Final = 7 * 86400.0

Level = Literal["problem", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    what: str
    fix: str

    def __str__(self) -> str:
        mark = "✗" if self.level == "problem" else "!"
        return f"{mark} {self.subject}: {self.what}\n    fix: {self.fix}"


@dataclass(frozen=True)
class MonitorSeen:
    """What the correlator knows of one monitor: per zone, the newest result and the remembered
    outcomes (oldest first)."""

    last_at: dict[str, datetime] = field(default_factory=dict)
    outcomes: tuple[bool, ...] = ()


@dataclass
class Snapshot:
    teams: list[Team] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    systems: list[System] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    windows: list[MaintenanceWindow] = field(default_factory=list)
    seen: dict[str, MonitorSeen] = field(default_factory=dict)
    departed: dict[str, datetime] = field(default_factory=dict)
    """People removed from the config, and when."""
    groups: dict[str, bool] = field(default_factory=dict)
    """LINE group id → whether the bot is in it (as the gateway last saw)."""
    broken: dict[str, Broken] = field(default_factory=dict)
    """``"<channel>:<target>"`` → the notifier's mark of a target that refused for good."""
    review: ReviewRound | None = None
    """The latest owner review round sent, with the teams' answers (None before the first)."""
    unreadable: list[str] = field(default_factory=list)


def _window_findings(window: MaintenanceWindow, now: datetime) -> list[Finding]:
    if window.ended_at is not None and window.ended_at <= now:
        return []
    if window.weekly is not None:
        covered = len(window.weekly.days) * window.weekly.duration
        if covered > WEEK / 2 and (window.end is None or window.end > now):
            return [
                Finding(
                    "warning",
                    f"maintenance {window.id}",
                    f"covers {covered / WEEK:.0%} of every week, with no end",
                    "shorten it, give it an `end`, or end it: fao maintenance end " + window.id,
                )
            ]
        return []
    if window.start is not None and window.end is not None and window.end > now:
        length = window.end - window.start
        if length > LONG_WINDOW:
            return [
                Finding(
                    "warning",
                    f"maintenance {window.id}",
                    f"lasts {length.days} days (until {window.end.date().isoformat()}): outages are hidden",
                    "split it into real work periods, or end it: fao maintenance end " + window.id,
                )
            ]
    return []


def _day(at: datetime) -> str:
    return at.astimezone(BANGKOK).date().isoformat()


def _review_findings(review: ReviewRound, teams: list[Team], people: list[Person]) -> list[Finding]:
    """Teams with a LINE group that the round asked and that have not confirmed."""
    names = {person.id: person.name for person in people}
    found: list[Finding] = []
    for team in sorted(teams, key=lambda t: t.id):
        if not team.line_groups or team.id not in review.teams:
            continue
        answer = review.answers.get(team.id)
        if answer is None:
            found.append(
                Finding(
                    "warning",
                    f"team {team.id}",
                    f"has not confirmed its systems and members (round {review.id}, sent {_day(review.sent_at)})",
                    "ask the team to check the review message in its LINE group and press ยืนยัน "
                    "(or ต้องแก้ไข, then correct the config and: fao apply DIR)",
                )
            )
        elif answer.status == "needs_changes":
            who = f"{names[answer.by]} ({answer.by})" if answer.by in names else answer.by
            found.append(
                Finding(
                    "problem",
                    f"team {team.id}",
                    f"{who} asked for changes to its systems and members on {_day(answer.at)} (round {review.id})",
                    "correct its systems, members (people[].teams) or groups in the config files and run: "
                    "fao apply DIR; then a member presses ยืนยัน in the review message",
                )
            )
    return found


def _listed(ids: list[str]) -> str:
    more = f" and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
    return ", ".join(ids[:LISTED]) + more


def _broken_fix(channel: str) -> str:
    if channel == "line":
        return (
            "check the group id (fao line groups): invite the bot back, or correct line_groups and run:"
            " fao apply DIR (the next alert tries it again)"
        )
    return f"correct the team's {CHANNEL_NAMES[channel]} in the config and run: fao apply DIR (the next alert tries it again)"


def _team_findings(
    team: Team, systems: list[str], groups: Mapping[str, bool], broken: Mapping[str, Broken]
) -> list[Finding]:
    """A team with no channel; a LINE group the bot has left or was never seen in; a target the
    notifier marked broken. ``systems`` (the team's) are named when no channel works at all."""
    unowned = f"; systems without a reachable owner: {_listed(systems)}" if systems else ""
    if not (team.line_groups or team.email or team.webhooks):
        return [
            Finding(
                "problem",
                f"team {team.id}",
                f"no LINE group, e-mail or webhook: its alerts go nowhere{unowned}",
                "add line_groups (ids from: fao line groups), email or webhooks to the team",
            )
        ]
    found: list[Finding] = []
    working = 0
    for channel, target, state, mark in (
        (t.channel, t.target, t.state, t.broken) for t in targets(team, groups, broken)
    ):  # the same definitions as the monthly report's (fao.runtime.reachability)
        if state == "left":
            found.append(
                Finding(
                    "problem",
                    f"team {team.id}",
                    f"the bot has left its LINE group {target}: alerts to it fail",
                    "invite the bot back into the group, or set the team's line_groups (see: fao line groups)",
                )
            )
        elif state == "broken" and mark is not None:
            found.append(
                Finding(
                    "problem",
                    f"team {team.id}",
                    f"its {CHANNEL_NAMES[channel]} {target} refused for good on {_day(mark.since)}"
                    f" ({mark.error[:120]}): deliveries to it are skipped",
                    _broken_fix(channel),
                )
            )
        else:
            working += 1
            if channel == "line" and target[0] in "CR" and groups and target not in groups:
                found.append(
                    Finding(
                        "warning",
                        f"team {team.id}",
                        f"the bot was never seen in its LINE group {target}",
                        "invite the bot into the group (its id then shows in: fao line groups)",
                    )
                )
    if systems and not working:
        found.append(
            Finding(
                "problem",
                f"team {team.id}",
                f"none of its LINE groups, e-mail addresses or webhooks works{unowned}",
                "make one of its channels work (see above), or add another",
            )
        )
    return found


def _escalation_findings(team: Team, people: set[str], teams: set[str]) -> list[Finding]:
    """Escalation steps of ``team`` naming people or teams that are not stored."""
    if team.escalation is None:
        return []
    found: list[Finding] = []
    for number, step in enumerate(team.escalation.steps, start=1):
        for kind, wanted, known in (("person", step.people, people), ("team", step.teams, teams)):
            for missing in (ref for ref in wanted if ref not in known):
                found.append(
                    Finding(
                        "problem",
                        f"team {team.id}",
                        f"escalation step {number} names {kind} {missing}, not in the inventory"
                        " (erased, or removed by hand): the step skips it",
                        f"remove {missing} from the team's escalation in the config files, then: fao apply DIR",
                    )
                )
    return found


def diagnose(snap: Snapshot, now: datetime, retention: timedelta = timedelta(days=365)) -> list[Finding]:
    found: list[Finding] = [
        Finding("problem", "stored document", what, "re-apply the config: fao apply DIR --yes")
        for what in snap.unreadable
    ]
    monitored = {m.system for m in snap.monitors if m.enabled}
    for system in sorted(snap.systems, key=lambda s: s.id):
        if system.id not in monitored:
            found.append(
                Finding(
                    "warning",
                    f"system {system.id}",
                    "has no enabled monitor",
                    "add a monitor for it, or remove the system",
                )
            )
    zones_needed: dict[str, list[str]] = {}
    latest_by_zone: dict[str, datetime] = {}
    for known in snap.seen.values():
        for zone, at in known.last_at.items():
            latest_by_zone[zone] = max(at, latest_by_zone.get(zone, at))
    for monitor in sorted(snap.monitors, key=lambda m: m.id):
        if not monitor.enabled:
            continue
        for zone in monitor.zones:
            zones_needed.setdefault(zone, []).append(monitor.id)
        seen = snap.seen.get(monitor.id)
        if seen is None or not seen.last_at:
            found.append(
                Finding(
                    "problem",
                    f"monitor {monitor.id}",
                    f"no result recorded (zones: {', '.join(monitor.zones)})",
                    "check that a prober runs in each of its zones (FAO_ZONE), then: fao check " + monitor.id,
                )
            )
        elif seen.outcomes and not any(seen.outcomes):
            found.append(
                Finding(
                    "problem",
                    f"monitor {monitor.id}",
                    f"all of its last {len(seen.outcomes)} results failed: it may never have worked as configured",
                    f"try it by hand: fao check {monitor.id} (URL, keyword, port, expected status)",
                )
            )
    for zone, monitors in sorted(zones_needed.items()):
        latest = latest_by_zone.get(zone)
        if latest is None or now - latest > SILENT_AFTER:
            since = f"nothing since {latest.isoformat(timespec='seconds')}" if latest else "never reported"
            found.append(
                Finding(
                    "problem",
                    f"zone {zone}",
                    f"{len(monitors)} monitor(s) need it; its probers: {since}",
                    f"start a prober with FAO_ZONE={zone} (or remove the zone from those monitors)",
                )
            )
    owned: dict[str, list[str]] = {}
    for system in sorted(snap.systems, key=lambda s: s.id):
        owned.setdefault(system.team, []).append(system.id)
    people, teams = {p.id for p in snap.people}, {t.id for t in snap.teams}
    for team in sorted(snap.teams, key=lambda t: t.id):
        found.extend(_team_findings(team, owned.get(team.id, []), snap.groups, snap.broken))
        found.extend(_escalation_findings(team, people, teams))
    for person in sorted(snap.people, key=lambda p: p.id):
        if person.line_user_id is None:
            found.append(
                Finding(
                    "warning",
                    f"person {person.id}",
                    "no LINE user id: cannot be recognised acknowledging in LINE, nor escalated to",
                    "ask them to send a message to the Official Account, then set line_user_id",
                )
            )
    for person_id, departed_at in sorted(snap.departed.items()):
        if now - departed_at > retention:
            found.append(
                Finding(
                    "warning",
                    f"person {person_id}",
                    f"left the config on {departed_at.date().isoformat()}, beyond the {retention.days}-day retention",
                    f"erase their data: fao people forget {person_id} --yes",
                )
            )
    for window in sorted(snap.windows, key=lambda w: w.id):
        found.extend(_window_findings(window, now))
    if snap.review is not None:
        found.extend(_review_findings(snap.review, snap.teams, snap.people))
    return found


def _seen(doc: Mapping[str, Any]) -> MonitorSeen:
    zones = doc.get("zones")
    last_at: dict[str, datetime] = {}
    outcomes: list[bool] = []
    if isinstance(zones, Mapping):
        for zone, state in zones.items():
            if not isinstance(state, Mapping):
                continue
            at = state.get("last_at")
            if isinstance(at, datetime):
                last_at[str(zone)] = at if at.tzinfo else at.replace(tzinfo=UTC)
            history = state.get("history")
            if isinstance(history, list):
                outcomes.extend(bool(x) for x in history)
    return MonitorSeen(last_at, tuple(outcomes))


async def snapshot(db: AsyncDatabase[Document], states: Mapping[str, Document]) -> Snapshot:
    """What the diagnosis reads: the inventory and the others' records in MongoDB, and ``states``
    (the correlator's monitor states, from its state bucket)."""
    snap = Snapshot()

    async def load(collection: str, kind: type[BaseModel], into: list[Any]) -> None:
        async for doc in db[collection].find({}):
            try:
                into.append(from_doc(kind, doc))
            except ValidationError as exc:
                snap.unreadable.append(f"{collection}/{doc.get('_id')}: {exc.error_count()} invalid field(s)")

    await load(TEAMS, Team, snap.teams)
    await load(PEOPLE, Person, snap.people)
    await load(SYSTEMS, System, snap.systems)
    await load(MONITORS, Monitor, snap.monitors)
    async for doc in db[MAINTENANCE].find({}):
        try:
            snap.windows.append(maintenance_from_doc(doc)[0])
        except ValueError as exc:
            snap.unreadable.append(f"maintenance/{doc.get('_id')}: {exc}")
    snap.groups = await read_groups(db)
    snap.broken = await read_broken(db)
    async for doc in db[DEPARTED].find({}):
        at = doc.get("departed_at")
        if isinstance(at, datetime):
            snap.departed[str(doc["_id"])] = at if at.tzinfo else at.replace(tzinfo=UTC)
    for monitor_id, doc in states.items():
        snap.seen[monitor_id] = _seen(doc)
    snap.review = await latest_review(db)
    return snap


async def run(
    mongo_url: str, mongo_db: str, nats_url: str, now: datetime, retention: timedelta
) -> list[Finding]:
    # nats-py waits for ever on a refused first connect unless it may retry at least once; its
    # default error callback would print a traceback per try (the command reports the failure).
    nc = await nats.connect(
        nats_url, connect_timeout=5, max_reconnect_attempts=1, reconnect_time_wait=0.5, error_cb=quiet
    )
    try:
        states = await state_docs(nc.jetstream())
    finally:
        await nc.close()
    client = connect(mongo_url)
    try:
        return diagnose(await snapshot(client[mongo_db], states), now, retention)
    finally:
        await client.close()
