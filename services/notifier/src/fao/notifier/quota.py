"""LINE quota awareness: what the month's pushes cost, what is left, and digest-only when it runs low.

A push to a group costs one message per member (../shared/notes/line-api.md §4; LINE's member
count excludes the bot). ``QuotaWatch`` keeps, in memory and in MongoDB ``line_state``:

- the month's figures from LINE: ``GET /v2/bot/message/quota`` (``type`` ``none`` = unlimited, or
  ``limited`` with ``value``) and ``GET /v2/bot/message/quota/consumption`` (``totalUsage``, LINE's
  approximation), read every ``refresh_interval`` seconds and ``refresh_after_send`` seconds after
  pushes were recorded; document ``_id: "quota"``, written with ``$set`` of these fields only
  (``exhausted_until`` in the same document is written by the LINE channel on a monthly-limit 429);
- each team group's member count (``GET /v2/bot/group/{groupId}/members/count``; 404: the bot is
  not in the group), one document per group ``_id: "group:<groupId>"``; that count is the ``cost``
  stored on each LINE delivery when it is recorded (``cost_of``);
- the costs recorded since LINE's figure was read (``charged``), so ``used`` = LINE's usage + those,
  and the month's **forecast**: ``used`` extrapolated at the month's rate so far to the end of the
  Asia/Bangkok month (``forecast_month``; the rate counts at least one day, so one busy hour on
  the 1st does not forecast thirty busy days).

**Digest-only** (``decide_digest_only``): with a limited quota, when what is left falls below
``low_remaining`` of the limit, or the forecast exceeds ``low_forecast`` × the limit, or LINE said
the monthly limit is reached (``exhausted_until`` ahead), every team's messages are batched into
one digest per group every ``digest_only_window`` seconds (``fao.notifier.digest``), except the
problems of **critical** systems, which still go at once: they are what the quota is for. It ends
when what is left is back above ``low_remaining`` + 5 % of the limit and the forecast below
``low_forecast`` − 5 % (a new month, a bigger plan), so it does not flap. An unlimited quota
(``type: none``) never turns it on. Each change is said **once** to the platform team: an outbox
notice (``line_quota_low`` / ``line_quota_ok``, ``_id`` derived from when digest-only began, so a
restart adds nothing) and a log line (``line_quota_digest_only`` at error level,
``line_quota_digest_only_ended``); the state is kept in the quota document (``digest_only``,
``digest_only_since``) so a restarted notifier continues it.

LINE unreachable (or answering an error) → the last figures are kept, ``line_quota_unreachable``
is logged, and the next refresh tries again; nothing raises out of the watch. Gauges:
``fao_line_quota_limit`` (−1: unlimited), ``fao_line_quota_used``, ``fao_line_quota_forecast``,
``fao_line_digest_only``.

On FerretDB a ``$set`` is an unlocked read-modify-write, so two writers' ``$set`` on the quota
document at the same instant can lose one's fields (MongoDB applies each atomically); the next
refresh rewrites the watch's own fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Final, Protocol

import aiohttp
import structlog
from linebot.v3.messaging import ApiException, AsyncApiClient, AsyncMessagingApi, Configuration
from prometheus_client import Gauge
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.errors import QuotaUnavailableError
from fao.notifier.outbox import Outbox
from fao.notifier.render import Catalogue
from fao.runtime.inventory import TEAMS, from_doc
from fao.runtime.store import Document
from fao.runtime.thai import Month
from fao.schemas import Team

log = structlog.get_logger()

LINE_STATE: Final = "line_state"
QUOTA_ID: Final = "quota"
GROUP_PREFIX: Final = "group:"
HYSTERESIS: Final = 0.05
MIN_RATE_DAYS: Final = 1.0

LIMIT: Final = Gauge("fao_line_quota_limit", "The month's LINE message limit (-1: unlimited)")
USED: Final = Gauge(
    "fao_line_quota_used", "LINE messages used this month (LINE's figure + pushes recorded since)"
)
FORECAST: Final = Gauge("fao_line_quota_forecast", "LINE messages the month will have used at this rate")
DIGEST_ONLY: Final = Gauge(
    "fao_line_digest_only", "1 while the LINE quota runs low and teams get digests only"
)

Clock = Callable[[], datetime]


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The Asia/Bangkok month containing ``now``: (start, end) as UTC datetimes, end exclusive."""
    return Month.containing(now).bounds()


def forecast_month(used: int, now: datetime) -> int:
    """``used`` so far this month, extrapolated to the month's end at the month's rate so far
    (counting at least ``MIN_RATE_DAYS`` elapsed), rounded up."""
    start, end = month_bounds(now)
    elapsed_days = max((now - start).total_seconds() / 86400, MIN_RATE_DAYS)
    left_days = max((end - now).total_seconds() / 86400, 0.0)
    return used + math.ceil(used / elapsed_days * left_days - 1e-9)


def decide_digest_only(
    current: bool,
    *,
    limit: int | None,
    used: int,
    forecast: int,
    exhausted: bool,
    low_remaining: float,
    low_forecast: float,
) -> bool:
    """Whether teams get digests only (see the module docstring); ``limit`` None: unlimited."""
    if limit is None:
        return False
    if exhausted:
        return True
    remaining = limit - used
    low = remaining < low_remaining * limit or forecast > low_forecast * limit
    if low or not current:
        return low
    recovered = (
        remaining >= (low_remaining + HYSTERESIS) * limit and forecast <= (low_forecast - HYSTERESIS) * limit
    )
    return not recovered


@dataclass(frozen=True)
class QuotaFigures:
    """The month's quota as last known."""

    limited: bool | None = None
    """None: never read from LINE."""
    limit: int | None = None
    usage: int | None = None
    """LINE's ``totalUsage`` when it was read (``checked_at``)."""
    checked_at: datetime | None = None
    recorded: int = 0
    """Costs of the pushes recorded since ``checked_at``."""

    @property
    def used(self) -> int:
        return (self.usage or 0) + self.recorded

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else self.limit - self.used


class QuotaApi(Protocol):
    """The LINE figures the watch reads (``LineQuotaApi``; tests may pass a fake)."""

    async def quota(self) -> int | None:
        """The month's limit; None: unlimited. Raises ``QuotaUnavailableError``."""
        ...

    async def consumption(self) -> int:
        """Messages used this month (LINE's approximation). Raises ``QuotaUnavailableError``."""
        ...

    async def member_count(self, group_id: str) -> int | None:
        """Members of a group (the bot excluded); None: the bot is not in it. Raises ``QuotaUnavailableError``."""
        ...


class LineQuotaApi:
    """``QuotaApi`` through line-bot-sdk v3 (``AsyncMessagingApi``), at ``base_url``."""

    def __init__(self, *, base_url: str, access_token: str, timeout: float) -> None:
        self._configuration = Configuration(host=base_url.rstrip("/"), access_token=access_token)
        self._timeout = timeout
        self._client: AsyncApiClient | None = None
        self._api: AsyncMessagingApi | None = None

    async def start(self) -> None:
        """Open the SDK's HTTP session (inside the running loop)."""
        if self._client is None:
            self._client = AsyncApiClient(self._configuration)
            self._api = AsyncMessagingApi(self._client)

    async def stop(self) -> None:
        client, self._client, self._api = self._client, None, None
        if client is not None:
            await client.close()

    async def _call(self, what: str, call: Callable[[AsyncMessagingApi], Awaitable[Any]]) -> Any:
        if self._api is None:
            raise RuntimeError("LineQuotaApi used before start()")
        try:
            async with asyncio.timeout(self._timeout):
                return await call(self._api)
        except ApiException as exc:
            raise QuotaUnavailableError(
                f"{what}: LINE answered {exc.status}: {exc.body or exc.reason}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise QuotaUnavailableError(f"{what}: cannot reach LINE: {type(exc).__name__}: {exc}") from exc

    async def quota(self) -> int | None:
        answer = await self._call("quota", lambda api: api.get_message_quota(_request_timeout=self._timeout))
        return None if answer.type == "none" or answer.value is None else int(answer.value)

    async def consumption(self) -> int:
        answer = await self._call(
            "consumption", lambda api: api.get_message_quota_consumption(_request_timeout=self._timeout)
        )
        return int(answer.total_usage)

    async def member_count(self, group_id: str) -> int | None:
        try:
            answer = await self._call(
                "member count",
                lambda api: api.get_group_member_count(group_id, _request_timeout=self._timeout),
            )
        except QuotaUnavailableError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        return int(answer.count)


def team_groups(teams: Iterable[Team]) -> dict[str, list[str]]:
    """Every LINE group of ``teams`` → the ids of the teams it serves."""
    groups: dict[str, list[str]] = {}
    for team in teams:
        for group in team.line_groups:
            groups.setdefault(group, []).append(team.id)
    return groups


async def read_teams(db: AsyncDatabase[Document]) -> list[Team]:
    """Every valid team in ``teams`` (a few dozen: one scan)."""
    teams: list[Team] = []
    async for doc in db[TEAMS].find({}):
        try:
            teams.append(from_doc(Team, doc))
        except ValidationError:
            log.warning("invalid_team", team=doc.get("_id"))
    return sorted(teams, key=lambda team: team.id)


@dataclass(frozen=True)
class GroupState:
    """One group's member count as last read."""

    group_id: str
    member_count: int | None
    in_group: bool
    checked_at: datetime


async def read_state(db: AsyncDatabase[Document]) -> tuple[Document | None, dict[str, GroupState]]:
    """The quota document and every group's document from ``line_state``."""
    quota: Document | None = None
    groups: dict[str, GroupState] = {}
    async for doc in db[LINE_STATE].find({}):
        key = str(doc["_id"])
        if key == QUOTA_ID:
            quota = doc
        elif key.startswith(GROUP_PREFIX) and "checked_at" in doc:
            group_id = key.removeprefix(GROUP_PREFIX)
            count = doc.get("member_count")
            groups[group_id] = GroupState(
                group_id, None if count is None else int(count), bool(doc.get("in_group")), doc["checked_at"]
            )
    return quota, groups


def figures_from_doc(doc: Mapping[str, Any] | None) -> QuotaFigures:
    if doc is None or "type" not in doc:
        return QuotaFigures()
    limit = doc.get("limit")
    usage = doc.get("usage")
    return QuotaFigures(
        limited=doc["type"] == "limited",
        limit=None if limit is None else int(limit),
        usage=None if usage is None else int(usage),
        checked_at=doc.get("checked_at"),
        recorded=int(doc.get("recorded_since_check") or 0),
    )


class QuotaWatch:
    """See the module docstring. Runs in the service's event loop only."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        api: QuotaApi,
        *,
        outbox: Outbox,
        catalogue: Catalogue,
        clock: Clock,
        refresh_interval: float = 300.0,
        refresh_after_send: float = 30.0,
        low_remaining: float = 0.10,
        low_forecast: float = 1.0,
        digest_only_window: float = 900.0,
    ) -> None:
        self._db = db
        self._state = db[LINE_STATE]
        self._api = api
        self._outbox = outbox
        self._catalogue = catalogue
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._refresh_after_send = refresh_after_send
        self._low_remaining = low_remaining
        self._low_forecast = low_forecast
        self._digest_only_window = digest_only_window
        self.figures = QuotaFigures()
        self.forecast: int | None = None
        self._members: dict[str, int] = {}
        self._digest_only = False
        self._since: datetime | None = None
        self._charged_at: float | None = None  # loop time of the first cost since the last refresh
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- what the digests and the dispatcher ask ------------------------------------------------

    def digest_only(self) -> bool:
        return self._digest_only

    def cost_of(self, target: str) -> int | None:
        return self._members.get(target)

    def charged(self, cost: int) -> None:
        self.figures = replace(self.figures, recorded=self.figures.recorded + cost)
        if self._charged_at is None:
            self._charged_at = asyncio.get_running_loop().time()
            self._wake.set()

    # -- life cycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Continue from the stored figures, member counts and digest-only state."""
        quota, groups = await read_state(self._db)
        self.figures = figures_from_doc(quota)
        self._members = {g.group_id: g.member_count for g in groups.values() if g.member_count is not None}
        if quota is not None and quota.get("digest_only"):
            self._digest_only = True
            self._since = quota.get("digest_only_since")
            log.warning("line_quota_digest_only_continues", since=str(self._since))
        self._publish()

    def start(self) -> None:
        """Refresh now, then whenever due (a task of its own: LINE's answers never hold the
        notifier's supervisor)."""
        self._task = asyncio.create_task(self._run(), name="line-quota-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._charged_at = None
            try:
                await self.refresh(self._clock())
            except Exception as exc:  # the database failed: the next refresh tries again
                log.error("line_quota_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            while True:
                due = started + self._refresh_interval
                if self._charged_at is not None:
                    due = min(due, max(self._charged_at + self._refresh_after_send, started))
                delay = due - loop.time()
                if delay <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    # -- one refresh ----------------------------------------------------------------------------

    async def refresh(self, now: datetime) -> None:
        """Read LINE's figures and the team groups' member counts, store them, forecast the month,
        and switch digest-only on or off (one refresh at a time)."""
        async with self._lock:
            await self._refresh(now)

    async def _set(self, key: str, fields: Document) -> None:
        """``$set`` ``fields`` on one ``line_state`` document, creating it if need be. FerretDB's
        upsert is a read then an insert: a writer that creates the document first (the LINE
        channel's ``exhausted_until``) makes ours fail once, and the plain update then applies."""
        try:
            await self._state.update_one({"_id": key}, {"$set": fields}, upsert=True)
        except DuplicateKeyError:
            await self._state.update_one({"_id": key}, {"$set": fields})

    async def _refresh(self, now: datetime) -> None:
        teams = await read_teams(self._db)
        groups = team_groups(teams)
        quota_doc = await self._state.find_one({"_id": QUOTA_ID})
        fields: Document = {}
        recorded_before = self.figures.recorded
        try:
            limit = await self._api.quota()
            usage = await self._api.consumption()
        except QuotaUnavailableError as exc:
            log.warning(
                "line_quota_unreachable", error=str(exc), kept_checked_at=str(self.figures.checked_at)
            )
            fields.update(read_error=str(exc)[:500], read_failed_at=now)
        else:
            # Pushes recorded while LINE answered are not in its figure yet.
            recorded = self.figures.recorded - recorded_before
            self.figures = QuotaFigures(limit is not None, limit, usage, now, recorded)
            fields.update(
                type="limited" if limit is not None else "none",
                limit=limit,
                usage=usage,
                checked_at=now,
                read_error=None,
            )
        await self._refresh_members(groups, now)
        figures = self.figures
        self.forecast = forecast_month(figures.used, now) if figures.limited is not None else None
        exhausted_until = (quota_doc or {}).get("exhausted_until")
        exhausted = isinstance(exhausted_until, datetime) and exhausted_until > now
        digest_only = decide_digest_only(
            self._digest_only,
            limit=figures.limit if figures.limited else None,
            used=figures.used,
            forecast=self.forecast or 0,
            exhausted=exhausted,
            low_remaining=self._low_remaining,
            low_forecast=self._low_forecast,
        )
        changed = digest_only != self._digest_only
        if changed:
            self._since = now.replace(microsecond=0) if digest_only else self._since
        fields.update(
            recorded_since_check=figures.recorded,
            used=figures.used,
            remaining=figures.remaining,
            forecast=self.forecast,
            month=str(Month.containing(now)),
            digest_only=digest_only,
            digest_only_since=self._since if digest_only else None,
            updated_at=now,
        )
        await self._set(QUOTA_ID, fields)
        if changed:
            await self._notice(digest_only, now, teams)
            self._digest_only = digest_only
            if not digest_only:
                self._since = None
        self._publish()

    async def _refresh_members(self, groups: Mapping[str, list[str]], now: datetime) -> None:
        for group_id in groups:
            try:
                count = await self._api.member_count(group_id)
            except QuotaUnavailableError as exc:
                log.warning("line_group_count_unreachable", group=group_id, error=str(exc))
                continue
            if count is None:
                self._members.pop(group_id, None)
                log.warning("line_group_not_joined", group=group_id, teams=groups[group_id])
            else:
                self._members[group_id] = count
            fields = {
                "group_id": group_id,
                "member_count": count,
                "in_group": count is not None,
                "checked_at": now,
            }
            await self._set(GROUP_PREFIX + group_id, fields)

    async def _notice(self, digest_only: bool, now: datetime, teams: list[Team]) -> None:
        since = self._since or now.replace(microsecond=0)
        figures = self.figures
        words = self._catalogue.quota
        text = (words.low if digest_only else words.ok).format(
            used=f"{figures.used:,}",
            limit=f"{figures.limit or 0:,}",
            remaining=f"{max(figures.remaining or 0, 0):,}",
            forecast=f"{self.forecast or 0:,}",
            duration=self._catalogue.format_duration(timedelta(seconds=self._digest_only_window)),
        )
        platform = [team for team in teams if team.platform]
        kind = "line_quota_low" if digest_only else "line_quota_ok"
        notice_id = f"line_quota_low:{since.isoformat()}" + ("" if digest_only else ":ok")
        fresh = await self._outbox.put_notice(
            notice_id,
            kind,
            text,
            now,
            teams=[team.id for team in platform],
            groups=list(dict.fromkeys(group for team in platform for group in team.line_groups)),
            since=since,
            limit=figures.limit,
            used=figures.used,
            forecast=self.forecast,
        )
        if not fresh:
            return  # said before a restart
        fields = {
            "notice": notice_id,
            "limit": figures.limit,
            "used": figures.used,
            "forecast": self.forecast,
            "platform_teams": [team.id for team in platform],
            "text": text,
        }
        if digest_only:
            log.error("line_quota_digest_only", **fields)
        else:
            log.info("line_quota_digest_only_ended", **fields)

    def _publish(self) -> None:
        figures = self.figures
        if figures.limited is not None:
            LIMIT.set(figures.limit if figures.limit is not None else -1)
            USED.set(figures.used)
        if self.forecast is not None:
            FORECAST.set(self.forecast)
        DIGEST_ONLY.set(1 if self._digest_only else 0)
