"""What the notifier tells about its own deliveries: stuck or failing, on /metrics and to people.

``DeliveryWatch`` keeps, in memory:

- the undelivered deliveries (``pending`` or ``claimed``) with the time each was recorded: added
  when the event is handled, removed when the delivery becomes final, replaced by the database's
  truth at every sweep. Gauges ``fao_notifier_undelivered`` (how many) and
  ``fao_notifier_oldest_undelivered_seconds`` (the oldest one's age; 0 when none), refreshed every
  tick (1 s);
- per LINE group, when its deliveries started failing: the first transient failure since the
  group's last answer from LINE (a send, or a permanent refusal). Gauge
  ``fao_notifier_failing_groups``.

A *failing period* starts when a group has been failing for ``failing_after`` seconds and ends
when no group is failing and a message went through since (or nothing is waiting any more). Its
start writes one ``delivery_failing`` notice to the outbox for the platform team (teams with
``platform: true``; LINE is what fails, so not through LINE) and logs ``delivery_failing`` at
error level; its end writes one ``delivery_recovered`` notice and logs ``delivery_recovered``.
Gauge ``fao_notifier_delivery_failing`` is 1 meanwhile. The open period is kept in
``notifier_state`` (``_id`` ``delivery_failing``, inserted: the unique ``_id`` makes it once), so
a restarted notifier continues it instead of sending a second notice; the notices' ``_id`` derive
from the period's start, so writing one again after a crash adds nothing.

``target_broken`` writes the one notice of a target marked broken (``fao.notifier.broken``):
``{kind: "target_broken", teams, groups, channel, broken_target, team, since, error, text}``, with
``_id`` ``target_broken:<channel>:<target>:<since>``, and logs ``target_broken_notice``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog
from prometheus_client import Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.broken import BrokenMark
from fao.notifier.deliveries import Delivery
from fao.notifier.notices import load_notices
from fao.notifier.outbox import Outbox
from fao.notifier.render import Catalogue, NoticeKind, render_delivery_notice
from fao.notifier.routing import RouteResolver
from fao.runtime.store import Document

log = structlog.get_logger()

NOTIFIER_STATE: Final = "notifier_state"
FAILING_STATE_ID: Final = "delivery_failing"

UNDELIVERED: Final = Gauge(
    "fao_notifier_undelivered", "Deliveries recorded but not final yet (waiting, or being retried)"
)
OLDEST_UNDELIVERED: Final = Gauge(
    "fao_notifier_oldest_undelivered_seconds",
    "Age of the oldest delivery not final yet, from when its event was handled; 0 when none",
)
FAILING_GROUPS: Final = Gauge(
    "fao_notifier_failing_groups", "LINE groups whose deliveries fail (no answer from LINE since)"
)
DELIVERY_FAILING: Final = Gauge(
    "fao_notifier_delivery_failing",
    "1 during a failing period: deliveries to LINE failing longer than FAO_DELIVERY_FAILING_AFTER",
)


@dataclass(frozen=True)
class Figures:
    """The delivery figures at one moment."""

    undelivered: int
    oldest_undelivered_s: float
    failing_groups: tuple[str, ...]
    failing_since: datetime | None
    period_since: datetime | None
    """Start of the failing period in progress, if any."""


class DeliveryWatch:
    """See the module docstring. Runs in the service's event loop only."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        routes: RouteResolver,
        outbox: Outbox,
        catalogue: Catalogue,
        failing_after: float,
    ) -> None:
        self._state = db[NOTIFIER_STATE]
        self._routes = routes
        self._outbox = outbox
        self._catalogue = catalogue
        self._notices = load_notices(catalogue.language)
        self._failing_after = failing_after
        self._undelivered: dict[str, tuple[datetime, str]] = {}
        self._sweep_finished: set[str] | None = None
        self._sweep_recorded: dict[str, tuple[datetime, str]] = {}
        self._failing: dict[str, datetime] = {}
        self._period: datetime | None = None
        self._noticed = False
        self._answered_in_period = False

    # -- what the workers and the handler report ------------------------------------------------

    def recorded(self, delivery: Delivery) -> None:
        entry = (delivery.created_at, delivery.target)
        self._undelivered[delivery.id] = entry
        if self._sweep_finished is not None:
            self._sweep_recorded[delivery.id] = entry

    def finished(self, delivery_id: str) -> None:
        self._undelivered.pop(delivery_id, None)
        if self._sweep_finished is not None:
            self._sweep_finished.add(delivery_id)
            self._sweep_recorded.pop(delivery_id, None)

    def failed(self, target: str, at: datetime) -> None:
        """A try to ``target`` failed transiently."""
        self._failing.setdefault(target, at)

    def answered(self, target: str) -> None:
        """LINE answered a try to ``target`` (sent, already accepted, or refused for good)."""
        self._failing.pop(target, None)
        if self._period is not None:
            self._answered_in_period = True

    # -- the database's truth -------------------------------------------------------------------

    def sweep_started(self) -> None:
        """Changes from now until ``sweep_done`` are applied on top of what the sweep reads."""
        self._sweep_finished = set()
        self._sweep_recorded = {}

    def sweep_done(self, undelivered: Iterable[Delivery] | None) -> None:
        """Replace the undelivered set with what the sweep read (None: the sweep failed)."""
        finished, recorded = self._sweep_finished or set(), self._sweep_recorded
        self._sweep_finished, self._sweep_recorded = None, {}
        if undelivered is None:
            return
        fresh = {d.id: (d.created_at, d.target) for d in undelivered if d.id not in finished}
        fresh.update(recorded)
        self._undelivered = fresh

    async def load(self) -> None:
        """Continue a failing period that a previous process opened."""
        doc = await self._state.find_one({"_id": FAILING_STATE_ID})
        if doc is not None:
            self._period = doc["since"]
            self._noticed = False  # written already, most likely: writing it again adds nothing
            self._answered_in_period = False
            log.warning("delivery_failing_continues", since=self._period.isoformat())

    # -- figures and the failing period ---------------------------------------------------------

    def figures(self, now: datetime) -> Figures:
        oldest = min((created for created, _ in self._undelivered.values()), default=None)
        return Figures(
            undelivered=len(self._undelivered),
            oldest_undelivered_s=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            failing_groups=tuple(sorted(self._failing)),
            failing_since=min(self._failing.values(), default=None),
            period_since=self._period,
        )

    async def tick(self, now: datetime) -> Figures:
        """Refresh the gauges; open or close the failing period when its time has come."""
        figures = self.figures(now)
        UNDELIVERED.set(figures.undelivered)
        OLDEST_UNDELIVERED.set(figures.oldest_undelivered_s)
        FAILING_GROUPS.set(len(figures.failing_groups))
        since = figures.failing_since
        if (
            self._period is None
            and since is not None
            and (now - since).total_seconds() >= self._failing_after
        ):
            await self._open(since.replace(microsecond=0), now)
        if self._period is not None and not self._noticed:
            await self._notice("delivery_failing", self._period, now, figures)
            self._noticed = True
        elif (
            self._period is not None
            and not figures.failing_groups
            and (self._answered_in_period or figures.undelivered == 0)
        ):
            await self._close(self._period, now, figures)
        DELIVERY_FAILING.set(1 if self._period is not None else 0)
        return figures

    async def _open(self, since: datetime, now: datetime) -> None:
        """Record the period (whole seconds: what the database keeps is what a restart reads)."""
        try:
            await self._state.insert_one({"_id": FAILING_STATE_ID, "since": since, "opened_at": now})
        except DuplicateKeyError:
            doc = await self._state.find_one({"_id": FAILING_STATE_ID})
            since = doc["since"] if doc is not None else since
        self._period = since
        self._noticed = False
        self._answered_in_period = False

    async def _close(self, since: datetime, now: datetime, figures: Figures) -> None:
        await self._notice("delivery_recovered", since, now, figures)
        await self._state.delete_one({"_id": FAILING_STATE_ID})
        self._period = None
        self._answered_in_period = False

    async def target_broken(self, mark: BrokenMark) -> None:
        """Tell the platform team, once, that ``mark``'s target refuses every delivery."""
        teams = await self._routes.platform_teams()
        text = self._notices.broken(
            channel=mark.channel, target=mark.target, team=mark.team, error=mark.error, since=mark.since
        )
        notice_id = f"target_broken:{mark.channel}:{mark.target}:{mark.since.isoformat()}"
        fresh = await self._outbox.put_notice(
            notice_id,
            "target_broken",
            text,
            mark.since,
            teams=[team.id for team in teams],
            groups=list(dict.fromkeys(group for team in teams for group in team.line_groups)),
            channel=mark.channel,
            broken_target=mark.target,
            team=mark.team,
            since=mark.since,
            error=mark.error,
        )
        if fresh:
            log.error(
                "target_broken_notice",
                notice=notice_id,
                channel=mark.channel,
                target=mark.target,
                team=mark.team,
                platform_teams=[team.id for team in teams],
                text=text,
            )

    async def _notice(self, kind: NoticeKind, since: datetime, now: datetime, figures: Figures) -> None:
        teams = await self._routes.platform_teams()
        groups = list(dict.fromkeys(group for team in teams for group in team.line_groups))
        text = render_delivery_notice(
            kind, self._catalogue, since=since, now=now, undelivered=figures.undelivered
        )
        notice_id = f"{FAILING_STATE_ID}:{since.isoformat()}"
        if kind == "delivery_recovered":
            notice_id += ":recovered"
        fresh = await self._outbox.put_notice(
            notice_id,
            kind,
            text,
            now,
            teams=[team.id for team in teams],
            groups=groups,
            since=since,
            failing_groups=list(figures.failing_groups),
            undelivered=figures.undelivered,
            oldest_undelivered_s=round(figures.oldest_undelivered_s, 1),
        )
        if not fresh:
            return  # written before a restart: said once
        fields = {
            "notice": notice_id,
            "since": since.isoformat(),
            "seconds": round((now - since).total_seconds(), 1),
            "undelivered": figures.undelivered,
            "oldest_undelivered_s": round(figures.oldest_undelivered_s, 1),
            "failing_groups": list(figures.failing_groups),
            "platform_teams": [team.id for team in teams],
            "text": text,
        }
        if kind == "delivery_failing":
            if not teams:
                fields["problem"] = "no_platform_team"
            log.error("delivery_failing", **fields)
        else:
            log.info("delivery_recovered", **fields)
