"""The quarterly owner review: each team's LINE groups are asked, once a round, whether the
systems and members Fao has for the team are still right.

**When.** A round is a quarter in Bangkok time, named ``"<year>-Q<n>"``. It is *due* from
``FAO_REVIEW_HOUR`` o'clock on day ``FAO_REVIEW_DAY`` of the quarter's first month (January,
April, July, October) until the quarter ends (``due_round``, pure); with
``FAO_REVIEW_EVERY_QUARTERS`` 2 or 4 only the first and third quarters (January, July), or the
first (January), have a round: a notifier that was not
running at that hour sends it when it starts; on a first deployment mid-quarter the current
round is sent at once. The dispatcher's supervisor calls ``OwnerReview.tick`` every second.

**Exactly once** per (round, team, group), with any number of notifier processes and across
restarts, on FerretDB (no atomic ``find_one_and_update``): the round is *claimed* by inserting
``owner_review_rounds {_id: <round>, teams: {<team>: [<groups>]}, status: claimed}`` (a unique
``_id``: one claim, one list of teams and groups, whoever inserts it; ``fao.runtime.owner_review``).
Then one delivery per (team, group) is recorded with ``DeliveryStore.record_message`` under the
claim id ``"review:<round>:<team>:line:<group>"`` (unique too), each group's worker is woken, and
the claim becomes ``recorded``. A process that finds the claim not ``recorded`` (another replica
at work, or itself before a crash) records its deliveries again, which adds nothing that exists:
a crash between the claim and the recording is completed on the next tick, never doubled.

Who is asked: every team with a LINE target in ``line_groups`` when the round is claimed; a team
without one is skipped (``fao doctor`` reports it). The message (``render_review``) is rendered
from the inventory when the deliveries are recorded. The answers come back through the gateway
(``owner_reviews``); ``fao doctor`` and the monthly report list the teams that have not confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

import structlog
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.deliveries import LINE, Delivery, DeliveryStore, claim_id
from fao.notifier.render import Catalogue
from fao.notifier.render_review import render_review, review_content
from fao.notifier.workers import DELIVERIES
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, from_doc
from fao.runtime.lease import default_holder_id
from fao.runtime.owner_review import ROUND_ID, ROUNDS
from fao.runtime.store import Document
from fao.runtime.thai import BANGKOK
from fao.schemas import Person, System, Team

log = structlog.get_logger()

M = TypeVar("M", Team, System, Person)

REVIEW: Final = "review"  # the event type and message kind of review deliveries
QUARTER_FIRST_MONTHS: Final = (1, 4, 7, 10)


@dataclass(frozen=True)
class ReviewSchedule:
    """When a round is due: ``day`` (1–28) and ``hour`` (0–23, Bangkok) of a quarter's first month,
    every ``quarters`` quarters from the first of the year (1: each quarter, 2: half-yearly, 4:
    yearly)."""

    day: int = 1
    hour: int = 10
    quarters: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.day <= 28 or not 0 <= self.hour <= 23:
            raise ValueError(f"review day must be 1-28 and hour 0-23, not {self.day} and {self.hour}")
        if self.quarters not in (1, 2, 4):
            raise ValueError(f"a review every 1, 2 or 4 quarters, not {self.quarters}")


def round_of(at: datetime) -> str:
    """The round (quarter, Bangkok time) ``at`` falls in: ``"2026-Q4"``."""
    local = at.astimezone(BANGKOK)
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def due_at(round_id: str, schedule: ReviewSchedule) -> datetime:
    """When ``round_id`` is due (UTC)."""
    if not ROUND_ID.fullmatch(round_id):
        raise ValueError(f"not a round id: {round_id!r}")
    year, quarter = int(round_id[:4]), int(round_id[-1])
    month = QUARTER_FIRST_MONTHS[quarter - 1]
    return datetime(year, month, schedule.day, schedule.hour, tzinfo=BANGKOK).astimezone(UTC)


def due_round(now: datetime, schedule: ReviewSchedule) -> str | None:
    """The round to send at ``now``: the current quarter's once its time has come (when it is a
    quarter with a round), else None."""
    current = round_of(now)
    if (int(current[-1]) - 1) % schedule.quarters:
        return None
    return current if now >= due_at(current, schedule) else None


def review_event_id(round_id: str, team_id: str) -> str:
    """``"review:<round>:<team>"``: what caused a review delivery (its ``event_id`` and lane)."""
    return f"review:{round_id}:{team_id}"


class OwnerReview:
    """Sends each due round once (see the module docstring); ``tick`` is called every second."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        deliveries: DeliveryStore,
        catalogue: Catalogue,
        schedule: ReviewSchedule,
        recorded: Callable[[Delivery], None],
        holder: str | None = None,
    ) -> None:
        self._db = db
        self._rounds = db[ROUNDS]
        self._deliveries = deliveries
        self._catalogue = catalogue
        self._schedule = schedule
        self._recorded = recorded
        self._holder = holder or default_holder_id()
        self._done: set[str] = set()

    async def tick(self, now: datetime) -> None:
        """Claim the due round (if any, and not done by this process yet) and record what its
        claim still lacks."""
        round_id = due_round(now, self._schedule)
        if round_id is None or round_id in self._done:
            return
        claim, fresh = await self._claim(round_id, now)
        if claim.get("status") != "recorded":
            await self._record(claim, now)
            await self._rounds.update_one(
                {"_id": round_id}, {"$set": {"status": "recorded", "recorded_at": now}}
            )
            if fresh:
                log.info("owner_review_sent", round=round_id, teams=sorted(claim["teams"]))
            else:
                log.info("owner_review_completed", round=round_id, teams=sorted(claim["teams"]))
        self._done.add(round_id)

    async def _claim(self, round_id: str, now: datetime) -> tuple[Document, bool]:
        """Insert the round's claim with the teams to ask; the existing claim and False when the
        round was claimed before (by any process)."""
        teams: dict[str, list[str]] = {}
        for team in await self._load(TEAMS, Team):
            if team.line_groups:
                teams[team.id] = list(dict.fromkeys(team.line_groups))
            else:
                log.info("owner_review_team_skipped", round=round_id, team=team.id, problem="no_line_groups")
        doc: Document = {
            "_id": round_id,
            "round": round_id,
            "due_at": due_at(round_id, self._schedule),
            "teams": teams,
            "status": "claimed",
            "claimed_by": self._holder,
            "claimed_at": now,
        }
        try:
            await self._rounds.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._rounds.find_one({"_id": round_id})
            if existing is None:  # nothing deletes claims
                raise
            return existing, False
        return doc, True

    async def _record(self, claim: Document, now: datetime) -> None:
        """Record one delivery per (team, group) of the claim (those recorded before stay as they are)."""
        round_id = claim["_id"]
        teams = {team.id: team for team in await self._load(TEAMS, Team)}
        systems = await self._load(SYSTEMS, System)
        people = await self._load(PEOPLE, Person)
        for team_id, groups in sorted(claim["teams"].items()):
            team = teams.get(team_id)
            content = review_content(
                round_id, team_id, team.name if team else team_id, systems, people, self._catalogue
            )
            message = render_review(content, self._catalogue)
            cause = review_event_id(round_id, team_id)
            for group in groups:
                delivery, fresh = await self._deliveries.record_message(
                    claim_id(cause, group),
                    event_id=cause,
                    incident_id=cause,
                    event_type=REVIEW,
                    target=group,
                    message=message,
                    at=claim["due_at"],
                    now=now,
                    review_round=round_id,
                    review_team=team_id,
                )
                if not delivery.final:
                    self._recorded(delivery)
                DELIVERIES.labels(LINE, "recorded" if fresh else "duplicate").inc()

    async def _load(self, collection: str, kind: type[M]) -> list[M]:
        """Every valid document of a config collection (an invalid one is logged and left out)."""
        out: list[M] = []
        for doc in await self._db[collection].find({}).to_list():
            try:
                out.append(from_doc(kind, doc))
            except ValidationError as exc:
                log.warning("owner_review_document_invalid", collection=collection, id=doc.get("_id"),
                            errors=exc.error_count())  # fmt: skip
        return out
