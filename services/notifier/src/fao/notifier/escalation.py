"""Escalation: a problem message nobody acknowledges is told again, step by step, to more people.

A team's ``escalation`` policy (config: ``Team.escalation``, steps of ``after`` seconds, people,
LINE groups, other teams, optional reminders) applies to its incidents of the listed severities.

**Timers** (collection ``escalations``, one document per incident, ``_id`` = the incident id):

- *armed* when a problem message is recorded for the incident (``opened`` not muted, or
  ``unmuted``) and the owning team's policy covers its severity: an **insert** ``{status: active,
  team, started: the problem event's time, fired: []}``. Events come at least once and possibly
  late or out of order, so arming never overwrites: a redelivered ``opened`` finds the document
  (active, cancelled or done) and changes nothing;
- *cancelled* by an ``acknowledged`` or ``resolved`` event (``status: cancelled``, ``why``, the
  event): an update of the active timer, or, when there is none yet and the team's policy would
  arm one, an insert of the cancelled document — a tombstone, so an ``opened`` arriving after its
  acknowledgement never arms. Cancelled too when, about to fire, the ``incidents`` collection (the
  correlator's, the truth: an acknowledgement may have come from the CLI or LINE) says the
  incident is no longer open, or when the team no longer has a policy covering the severity
  (``why: no_policy``);
- *done* when every step has fired its last occurrence (``why: all_steps_fired``).

**Firing.** Every ``interval`` (1 s) the loop checks the active timers against the team's current
policy (``escalation_schedule.due_steps``: at most the latest occurrence of each step, so a step
that came due while no notifier ran fires once on start). Each due occurrence is **claimed** by
inserting ``escalation_steps {_id: "<incident>:esc<step>.<n>", targets, waited_s, at,
status: claimed}``: the unique ``_id`` is the only atomic claim FerretDB offers
(``find_one_and_update`` is an unlocked read-modify-write there), so any number of notifier
processes decide each occurrence once, with one list of targets. Then one delivery per target is
recorded with ``DeliveryStore.record_message`` (claim id ``"<incident>:esc<step>.<n>:line:<target>"``,
also unique) and the target's worker is woken; the claim becomes ``recorded`` and the occurrence
joins the timer's ``fired``. A process that finds the claim already there (another replica, or
itself before a crash) records the claim's deliveries again, which adds nothing that exists, so a
claim left half done by a crash is completed and never doubled.

Targets: each person's ``line_user_id`` (a push to that user), each listed LINE group, and every
LINE group of each listed team, each target once. A person without a LINE user id, an unknown
person or team, or a team without groups is logged once per process and skipped.

**Fallbacks.** The claim also keeps the plan (``targets.TargetPlan``) of each target that has one,
and its deliveries are recorded with it, so the workers fall back as for any message (after
``fallback_after`` failed tries, a permanent error, a broken target, LINE's monthly limit): a
person's push falls back to their ``email`` when the owning team's channel policy names e-mail
and this notifier sends e-mail (``RouteResolver.person_plan``); a listed team's group to that
team's other channels (``RouteResolver.team_plans``). A group listed by id alone has no
fallbacks. A claim recorded by an older notifier has no plans: its deliveries none either.

The notifier does not publish an ``escalated`` incident event (only the correlator publishes on
the incident stream); an escalation's record is its ``escalations`` document, its claims and its
deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeVar
from uuid import UUID, uuid5

import structlog
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.deliveries import LINE, Delivery, DeliveryStore, claim_id
from fao.notifier.digest import StormDigests
from fao.notifier.escalation_schedule import StepRun, covers, due_steps, next_due
from fao.notifier.render import Catalogue, render_escalation
from fao.notifier.routing import Route, RouteResolver
from fao.notifier.targets import TargetPlan, incident_summary
from fao.notifier.workers import DELIVERIES
from fao.runtime.inventory import PEOPLE, TEAMS, from_doc
from fao.runtime.lease import default_holder_id
from fao.runtime.store import Document, IndexSpec
from fao.schemas import EscalationStep, Incident, IncidentEvent, Person, Severity, Team

log = structlog.get_logger()

Clock = Callable[[], datetime]
M = TypeVar("M", Team, Person)
TimerStatus = Literal["active", "cancelled", "done"]

ESCALATIONS: Final = "escalations"
ESCALATION_STEPS: Final = "escalation_steps"
INCIDENTS: Final = "incidents"  # written by the correlator; read here only
ESCALATED: Final = "escalated"  # the event type of escalation deliveries
# Escalation steps placed by the storm digests are recorded as events of their own, with ids
# uuid5(ESCALATION_EVENTS, step claim id). Fixed forever (changing it would record steps again).
ESCALATION_EVENTS: Final = UUID("5e0c7a1d-2b4f-4d8e-9a31-6c7f0e2d4b19")

INDEXES: Final = [
    IndexSpec(ESCALATIONS, [("status", 1)]),
    IndexSpec(ESCALATION_STEPS, [("incident_id", 1)]),
]

ESCALATION_OUTCOMES: Final = Counter(
    "fao_notifier_escalations_total",
    "Escalation timers armed, steps fired (claimed by this process), timers cancelled or done",
    ["outcome"],
)
ACTIVE_TIMERS: Final = Gauge("fao_notifier_escalations_active", "Escalation timers running")
LAST_CHECK: Final = Gauge(
    "fao_notifier_escalation_last_check_timestamp_seconds",
    "When the escalation loop last finished checking every active timer (Unix time)",
)


def step_claim_id(incident_id: str, run: StepRun) -> str:
    """``"<incident>:esc<step>.<n>"``: one occurrence of one step of one incident's escalation."""
    return f"{incident_id}:esc{run.key}"


@dataclass
class Timer:
    """An active escalation timer, as kept in memory by the loop."""

    incident_id: str
    team: str
    severity: Severity
    started: datetime
    fired: set[StepRun] = field(default_factory=set)

    @classmethod
    def from_doc(cls, doc: Document) -> Timer:
        return cls(
            incident_id=doc["_id"],
            team=doc["team"],
            severity=doc["severity"],
            started=doc["started"],
            fired={StepRun.parse(key) for key in doc.get("fired") or []},
        )


class EscalationStore:
    """``escalations`` and ``escalation_steps`` (FerretDB-safe: inserts decide, ``_id`` filters)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._timers = db[ESCALATIONS]
        self._steps = db[ESCALATION_STEPS]

    async def arm(self, timer: Timer, event_id: str, now: datetime) -> bool:
        """Insert the active timer; False when the incident has a timer document already."""
        try:
            await self._timers.insert_one(
                {
                    "_id": timer.incident_id,
                    "incident_id": timer.incident_id,
                    "team": timer.team,
                    "severity": timer.severity,
                    "started": timer.started,
                    "status": "active",
                    "fired": [],
                    "armed_by": event_id,
                    "armed_at": now,
                    "updated_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def end(
        self, incident_id: str, status: TimerStatus, why: str, now: datetime, event_id: str | None = None
    ) -> bool:
        """Make the timer ``status`` (cancelled, done) unless it has ended already; with no timer
        yet, insert the ended document, so a late arming finds it. True when this ended an active
        timer."""
        fields = {"status": status, "why": why, "ended_by": event_id, "ended_at": now, "updated_at": now}
        try:
            await self._timers.insert_one({"_id": incident_id, "incident_id": incident_id, **fields})
        except DuplicateKeyError:
            result = await self._timers.update_one({"_id": incident_id, "status": "active"}, {"$set": fields})
            return result.modified_count > 0
        return False

    async def exists(self, incident_id: str) -> bool:
        return await self._timers.find_one({"_id": incident_id}) is not None

    async def active(self) -> list[Timer]:
        docs = await self._timers.find({"status": "active"}).to_list()
        return [Timer.from_doc(doc) for doc in docs]

    async def fired(self, incident_id: str, run: StepRun, now: datetime) -> None:
        await self._timers.update_one(
            {"_id": incident_id}, {"$addToSet": {"fired": run.key}, "$set": {"updated_at": now}}
        )

    async def claim(self, doc: Document) -> tuple[Document, bool]:
        """Insert the claim of one step occurrence; the existing claim and False when it was
        claimed before (by any process)."""
        try:
            await self._steps.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._steps.find_one({"_id": doc["_id"]})
            if existing is None:  # nothing deletes claims
                raise
            return existing, False
        return doc, True

    async def claim_recorded(self, cid: str, now: datetime) -> None:
        await self._steps.update_one({"_id": cid}, {"$set": {"status": "recorded", "recorded_at": now}})


class Escalator:
    """Arms and cancels escalation timers (from the event handler) and fires their due steps (its
    own loop, ``start``/``stop``); see the module docstring."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        routes: RouteResolver,
        deliveries: DeliveryStore,
        catalogue: Catalogue,
        recorded: Callable[[Delivery], None],
        clock: Clock,
        interval: float = 1.0,
        reload_interval: float = 30.0,
        holder: str | None = None,
        digests: StormDigests | None = None,
    ) -> None:
        self._db = db
        self._digests = digests
        self._store = EscalationStore(db)
        self._routes = routes
        self._deliveries = deliveries
        self._catalogue = catalogue
        self._recorded = recorded
        self._clock = clock
        self._interval = interval
        self._reload_interval = reload_interval
        self._holder = holder or default_holder_id()
        self._timers: dict[str, Timer] = {}
        # Changes made while a reload reads the database: applied on top of what it read.
        self._changed_in_reload: dict[str, Timer | None] | None = None
        self._warned: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_check: float | None = None
        self.checks = 0
        """Passes over the active timers finished by this escalator (tests wait on it)."""

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the active timers, fire what came due while no notifier ran, start the loop."""
        await self.load()
        await self.check()
        self._task = asyncio.create_task(self._run(), name="escalations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def healthy(self) -> bool:
        """The loop runs and finished a pass recently."""
        if self._task is None or self._task.done() or self._last_check is None:
            return False
        age = asyncio.get_running_loop().time() - self._last_check
        return age <= 3 * self._interval + 10.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_reload = loop.time() + self._reload_interval
        while True:
            await asyncio.sleep(self._interval)
            try:
                if loop.time() >= next_reload:
                    next_reload = loop.time() + self._reload_interval
                    await self.load()
                await self.check()
            except Exception as exc:  # the database failed: the next pass tries again
                log.error("escalation_check_failed", error=f"{type(exc).__name__}: {exc}")

    async def load(self) -> None:
        """Read the active timers (at start, then every ``reload_interval``: the database's truth)."""
        self._changed_in_reload = {}
        try:
            loaded = {timer.incident_id: timer for timer in await self._store.active()}
        finally:
            changed, self._changed_in_reload = self._changed_in_reload, None
        for incident_id, timer in changed.items():
            if timer is None:
                loaded.pop(incident_id, None)
            else:
                loaded[incident_id] = timer
        self._timers = loaded
        ACTIVE_TIMERS.set(len(self._timers))

    def _track(self, incident_id: str, timer: Timer | None) -> None:
        if timer is None:
            self._timers.pop(incident_id, None)
        else:
            self._timers[incident_id] = timer
        if self._changed_in_reload is not None:
            self._changed_in_reload[incident_id] = timer
        ACTIVE_TIMERS.set(len(self._timers))

    # -- from the event handler -----------------------------------------------------------------

    async def arm(self, event: IncidentEvent, route: Route) -> None:
        """A problem message was recorded for ``event``'s incident: start its timer if the owning
        team's policy covers the severity (for a platform incident: the first platform team, by
        id, whose policy does). Idempotent."""
        incident = event.incident
        team = next((t for t in route.teams if covers(t.escalation, incident.severity)), None)
        if team is None:
            return
        timer = Timer(incident.id, team.id, incident.severity, event.at)
        if await self._store.arm(timer, str(event.event_id), self._clock()):
            self._track(incident.id, timer)
            ESCALATION_OUTCOMES.labels("armed").inc()
            log.info("escalation_armed", incident=incident.id, team=team.id, started=event.at.isoformat())

    async def observe(self, event: IncidentEvent) -> None:
        """An acknowledgement or the end of the problem cancels the incident's timer. Without one
        yet (its ``opened`` is late, or comes again), a cancelled one is left for it to find —
        only when the team was told of the problem and its policy would arm a timer."""
        incident = event.incident
        if event.type not in ("acknowledged", "resolved") or not incident.alerted:
            return
        if incident.id not in self._timers and not await self._store.exists(incident.id):
            route = await self._routes.resolve(incident.system_id)
            if not any(covers(team.escalation, incident.severity) for team in route.teams):
                return
        await self._end(incident.id, "cancelled", event.type, str(event.event_id))

    async def _end(
        self, incident_id: str, status: TimerStatus, why: str, event_id: str | None = None
    ) -> None:
        changed = await self._store.end(incident_id, status, why, self._clock(), event_id)
        self._track(incident_id, None)
        if changed:
            ESCALATION_OUTCOMES.labels(status).inc()
            log.info(f"escalation_{status}", incident=incident_id, why=why)

    # -- the loop -------------------------------------------------------------------------------

    async def check(self) -> None:
        """One pass: fire every due step of every active timer (the loop calls it every interval)."""
        now = self._clock()
        teams: dict[str, Team | None] = {}
        for timer in list(self._timers.values()):
            if timer.team not in teams:
                teams[timer.team], _ = await self._load(TEAMS, timer.team, Team)
            await self._check_timer(timer, teams[timer.team], now)
        self.checks += 1
        self._last_check = asyncio.get_running_loop().time()
        LAST_CHECK.set(now.timestamp())

    async def _check_timer(self, timer: Timer, team: Team | None, now: datetime) -> None:
        policy = team.escalation if team is not None else None
        if team is None or policy is None or not covers(policy, timer.severity):
            await self._end(timer.incident_id, "cancelled", "no_policy")
            return
        due = due_steps(policy, timer.started, now, timer.fired)
        if not due:
            if next_due(policy, timer.started, timer.fired) is None:
                await self._end(timer.incident_id, "done", "all_steps_fired")
            return
        incident = await self._incident(timer.incident_id)
        if incident is None:
            return
        if incident.status != "open":
            await self._end(timer.incident_id, "cancelled", incident.status)
            return
        for run in due:
            await self._fire(timer, team, incident, run, policy.steps[run.step], now)

    async def _incident(self, incident_id: str) -> Incident | None:
        doc = await self._db[INCIDENTS].find_one({"_id": incident_id})
        if doc is None:
            self._warn_once(f"incident:{incident_id}", "escalation_incident_unknown", incident=incident_id)
            return None
        try:
            return from_doc(Incident, doc)
        except ValidationError as exc:
            self._warn_once(
                f"incident:{incident_id}",
                "escalation_incident_invalid",
                incident=incident_id,
                errors=exc.error_count(),
            )
            return None

    async def _fire(
        self, timer: Timer, team: Team, incident: Incident, run: StepRun, step: EscalationStep, now: datetime
    ) -> None:
        cid = step_claim_id(incident.id, run)
        targets, plans = await self._targets(step, team)
        claim, fresh = await self._store.claim(
            {
                "_id": cid,
                "incident_id": incident.id,
                "team": timer.team,
                "step": run.step,
                "n": run.n,
                "targets": targets,
                "plans": plans,
                "waited_s": (now - timer.started).total_seconds(),
                "at": now,
                "status": "claimed",
                "claimed_by": self._holder,
                "claimed_at": now,
            }
        )
        if claim["status"] != "recorded":
            await self._record(incident, run, claim, now)
            await self._store.claim_recorded(cid, now)
        await self._store.fired(incident.id, run, now)
        timer.fired.add(run)
        if fresh:
            ESCALATION_OUTCOMES.labels("fired").inc()
            log.warning(
                "escalation_fired",
                incident=incident.id,
                team=timer.team,
                step=run.step,
                reminder=run.n,
                targets=len(claim["targets"]),
                waited_s=round(claim["waited_s"]),
            )
            if not claim["targets"]:
                log.error(
                    "escalation_step_reaches_nobody", incident=incident.id, team=timer.team, step=run.step
                )

    async def _record(self, incident: Incident, run: StepRun, claim: Document, now: datetime) -> None:
        """Record the claim's deliveries (those recorded before are left as they are)."""
        route = await self._routes.resolve(incident.system_id)
        message = render_escalation(
            incident,
            route.system,
            self._catalogue,
            waited=timedelta(seconds=claim["waited_s"]),
            reminder=run.n,
        )
        team = next((t for t in route.teams if t.escalation is not None), None)
        plans = {doc["target"]: doc for doc in claim.get("plans") or ()}
        for target in claim["targets"]:
            # Recorded with the target's plan (its fallbacks) and the incident a webhook needs.
            plan = plans.get(target)
            extra = {**plan_fields(plan), "incident": incident_summary(incident)} if plan else {}
            if self._digests is not None:
                # As an event of its own (deterministic id: the same record whoever records it),
                # placed like every message to that target: one by one within the storm budget,
                # else in the target's next digest.
                step_event = IncidentEvent(
                    event_id=uuid5(ESCALATION_EVENTS, claim["_id"]),
                    type=ESCALATED,
                    incident=incident,
                    at=claim["at"],
                )
                delivery, fresh = await self._digests.record(
                    step_event, target, message, now,
                    system=route.system, storm=team.storm if team is not None else None,
                    escalation_step=run.step, escalation_n=run.n, **extra,
                )  # fmt: skip
            else:
                delivery, fresh = await self._deliveries.record_message(
                    claim_id(claim["_id"], target),
                    event_id=claim["_id"],
                    incident_id=incident.id,
                    event_type=ESCALATED,
                    target=target,
                    message=message,
                    at=claim["at"],
                    now=now,
                    escalation_step=run.step,
                    escalation_n=run.n,
                    **extra,
                )
            if not delivery.final:
                self._recorded(delivery)
            DELIVERIES.labels(LINE, "recorded" if fresh else "duplicate").inc()

    async def _targets(self, step: EscalationStep, owner: Team) -> tuple[list[str], list[Document]]:
        """The step's LINE targets, each once: people's user ids, groups, the teams' groups; and
        the plans of those that have fallbacks (``{target, **TargetPlan.fields()}`` each)."""
        targets: list[str] = []
        plans: dict[str, TargetPlan] = {}
        for person_id in step.people:
            person, problem = await self._load(PEOPLE, person_id, Person)
            if person is not None and person.line_user_id is None:
                problem = "no_line_user_id"
            if person is None or person.line_user_id is None:
                self._skip_once("person", person_id, problem)
                continue
            targets.append(person.line_user_id)
            plan = self._routes.person_plan(person, owner)
            if plan is not None:
                plans.setdefault(person.line_user_id, plan)
        targets += step.line_groups
        for team_id in step.teams:
            team, problem = await self._load(TEAMS, team_id, Team)
            if team is None or not team.line_groups:
                self._skip_once("team", team_id, problem or "no_line_groups")
                continue
            targets += team.line_groups
            for plan in self._routes.team_plans(team):
                if plan.target.channel == LINE and plan.fallbacks:
                    plans.setdefault(plan.target.address, plan)
        unique = list(dict.fromkeys(targets))
        return unique, [{"target": t, **plans[t].fields()} for t in unique if t in plans]

    async def _load(self, collection: str, key: str, kind: type[M]) -> tuple[M | None, str]:
        """The config document ``key`` as ``kind``, or None and why (``unknown``, ``invalid``)."""
        doc = await self._db[collection].find_one({"_id": key})
        if doc is None:
            return None, "unknown"
        try:
            return from_doc(kind, doc), ""
        except ValidationError:
            return None, "invalid"

    def _skip_once(self, what: str, key: str, problem: str) -> None:
        """A step's person or team that cannot be reached: logged once per process, then skipped."""
        self._warn_once(
            f"{what}:{key}:{problem}", "escalation_target_skipped", **{what: key, "problem": problem}
        )

    @property
    def active(self) -> int:
        """Timers running (as this process knows them)."""
        return len(self._timers)

    @property
    def warned(self) -> frozenset[str]:
        """What this process has logged once and then skipped: ``person:<id>:<problem>``,
        ``team:<id>:<problem>``, ``incident:<id>`` (missing from, or invalid in, ``incidents``)."""
        return frozenset(self._warned)

    def _warn_once(self, key: str, message: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, **fields)


def plan_fields(doc: Document) -> dict[str, Any]:
    """A claim's stored plan of one target as the delivery record keeps it (``TargetPlan.fields``)."""
    return {key: value for key, value in doc.items() if key != "target"}
