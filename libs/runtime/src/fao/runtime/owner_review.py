"""The quarterly owner review as stored: rounds (the notifier's claims) and the teams' answers.

Every quarter each team's LINE group is asked whether the systems and members Fao has for it are
still right (``fao.notifier.review`` sends it; ``fao.gateway.reviews`` records the answers). The
records, read by ``fao doctor`` and the monthly report through ``latest_review``:

- ``owner_review_rounds``: one document per round, ``_id`` = the round id (``"2026-Q4"``), inserted
  by the notifier that claims the round (a unique ``_id``: one claim whatever the replicas):
  ``{round, due_at, claimed_at, teams: {<team id>: [<LINE group>, …]}, status: claimed | recorded}``;
- ``owner_reviews``: one per (round, team), ``_id`` = ``"<round>:<team>"``, written by the
  gateway: ``{round, team, status: confirmed | needs_changes, by: <person id>, at}`` (the latest
  answer wins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.store import Document

ROUNDS: Final = "owner_review_rounds"
REVIEWS: Final = "owner_reviews"
# "<year>-Q<1..4>": sorts in time order as text.
ROUND_ID: Final = re.compile(r"[0-9]{4}-Q[1-4]")

ReviewStatus = Literal["confirmed", "needs_changes"]
REVIEW_STATUSES: Final[tuple[ReviewStatus, ...]] = ("confirmed", "needs_changes")


def review_id(round_id: str, team_id: str) -> str:
    """``"<round>:<team>"``: the ``_id`` of one team's answer in one round."""
    return f"{round_id}:{team_id}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReviewAnswer:
    """A team's latest answer in a round."""

    team: str
    status: ReviewStatus
    by: str
    """The person id of who answered."""
    at: datetime


@dataclass(frozen=True)
class ReviewRound:
    """A round that was sent (claimed), with the teams it went to and their answers."""

    id: str
    sent_at: datetime
    teams: tuple[str, ...]
    answers: dict[str, ReviewAnswer] = field(default_factory=dict)

    def unconfirmed(self) -> list[str]:
        """The teams it went to that have not confirmed (no answer, or asked for changes), by id."""
        return sorted(
            team for team in self.teams if (a := self.answers.get(team)) is None or a.status != "confirmed"
        )


def round_from_doc(doc: Document) -> ReviewRound | None:
    """A round claim as stored, or None when the document is not one (never written by Fao)."""
    round_id, teams, at = doc.get("_id"), doc.get("teams"), doc.get("claimed_at")
    if not isinstance(round_id, str) or not ROUND_ID.fullmatch(round_id):
        return None
    if not isinstance(teams, dict) or not isinstance(at, datetime):
        return None
    return ReviewRound(round_id, _utc(at), tuple(sorted(str(team) for team in teams)))


def answer_from_doc(doc: Document) -> ReviewAnswer | None:
    team, status, by, at = doc.get("team"), doc.get("status"), doc.get("by"), doc.get("at")
    if not isinstance(team, str) or status not in REVIEW_STATUSES or not isinstance(at, datetime):
        return None
    return ReviewAnswer(team, "confirmed" if status == "confirmed" else "needs_changes", str(by), _utc(at))


async def latest_review(db: AsyncDatabase[Document], until: datetime | None = None) -> ReviewRound | None:
    """The latest round that was sent (by ``until``, if given), with its answers; None before the
    first round."""
    rounds = [
        r
        for doc in await db[ROUNDS].find({}).to_list()
        if (r := round_from_doc(doc)) is not None and (until is None or r.sent_at <= until)
    ]
    if not rounds:
        return None
    latest = max(rounds, key=lambda r: r.id)
    answers: dict[str, ReviewAnswer] = {}
    for doc in await db[REVIEWS].find({"round": latest.id}).to_list():
        answer = answer_from_doc(doc)
        if answer is not None:
            answers[answer.team] = answer
    return ReviewRound(latest.id, latest.sent_at, latest.teams, answers)
