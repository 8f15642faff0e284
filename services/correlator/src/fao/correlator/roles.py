"""Several correlators share the work: roles, their leases, and what each role consumes.

The work is cut into *roles*: one per shard (``fao.correlator.shards``: results partitions closed
under dependencies, so a shard's owner sees every ancestor and descendant of its systems) and the
*platform* role (zone problems, silent probers, incidents of no system, and routing). Every
instance registers in the leases bucket (``correlator-member.<member>``, renewed like a lease,
gone one TTL after the instance dies) and follows the others; each role's owner is the live
member with the highest rendezvous weight for it (``fao.runtime.rendezvous``), so every instance
computes the same owners, a new instance takes ≈1/N of the roles and a dead one's roles move to
the others. Before a role runs, its owner takes its leases — one per partition of a shard
(``correlator.p<N>``), ``correlator.platform`` for the platform role —, which the previous owner
releases when it lets the role go (or which expire one TTL after it died): two instances never
decide about the same systems at once.

A shard's correlator (``Correlator`` with its ``Scope``) consumes the shard's two durables —
results (``correlator-results-<mask>``, a filter subject per partition) and the commands routed to
its partitions (``correlator-commands-<mask>``; ``adopt``) — so a new owner goes on exactly where the previous one stopped
(nothing acknowledged is applied twice, nothing unacknowledged is lost), recovers its states from
the state bucket, its open incidents and its unfinished journal entries, and once a second tells
the platform role what it sees of each zone (``ZoneView``s in the state bucket, key
``zoneview.<shard>``). The platform role decides zone problems and silent probers from all views,
takes every command as people send them and applies those about its own incidents, sending the
others on to their system's partition; single results (push heartbeats) go on to their
partition as one-result batches.

A deployment of the release before keeps its two durables (``correlator-results`` and
``correlator-commands``): the first instance to start creates the current shards' durables where
they stopped and deletes them (``retire_v1_durables``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Gauge
from pydantic import TypeAdapter

from fao.correlator.policy import ZoneView
from fao.correlator.scope import Scope
from fao.correlator.shards import shard_map, shards
from fao.correlator.store import CorrelatorStore
from fao.runtime.bus import state_bucket
from fao.runtime.consume import DurableConsumer, consumer_config, ensure_durable
from fao.runtime.inventory import KvCatalog
from fao.runtime.lease import Lease, default_holder_id, leases_bucket
from fao.runtime.rendezvous import member_name, owner
from fao.runtime.service import Runtime, until_stopped
from fao.schemas import PLATFORM_SYSTEM, Command, System
from fao.schemas import subjects as s
from fao.schemas.results import ResultBatch, ResultMessage

if TYPE_CHECKING:
    from fao.correlator.app import Correlator, CorrelatorSettings

log = structlog.get_logger()

SERVICE = "correlator"
PLATFORM = "platform"
# How often the roles are looked at again (also at once when the members change).
ROLE_CHECK = 1.0
SYSTEMS_REFRESH = 10.0
# A role whose start failed (MongoDB away...) is tried again after this long.
RETRY = 2.0
# At most this long (lease TTLs, seconds) the start waits for the first roles to run.
START_WAIT_TTLS = 2
START_WAIT = 10.0
PARTITIONS = Gauge("fao_correlator_partitions", "Results partitions whose systems this instance decides now")
PLATFORM_ROLE = Gauge("fao_correlator_platform", "1 while this instance holds the platform role")


def role_scopes(systems: list[System]) -> dict[str, Scope]:
    """Every role with what it decides, from the systems (the same on every instance)."""
    roles = {PLATFORM: Scope(partitions=frozenset(), platform=True, shard=-1)}
    for shard, partitions in shards(shard_map(systems)).items():
        roles[f"shard-{shard}"] = Scope(partitions=partitions, platform=False, shard=shard)
    return roles


async def retire_v1_durables(js: JetStreamContext, scopes: dict[str, Scope]) -> None:
    """An upgrade from the release before 1.4: create the durables of ``scopes`` (the current
    roles) where its two durables stopped, then delete those."""
    for stream, old in ((s.RESULTS_STREAM, s.CORRELATOR_RESULTS_CONSUMER_V1),
                        (s.COMMANDS_STREAM, s.CORRELATOR_COMMANDS_CONSUMER_V1)):  # fmt: skip
        try:
            info = await js.consumer_info(stream, old)
        except NotFoundError:
            continue
        start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
        for scope in scopes.values():
            for durable, subjects in durables(scope):
                if durable_stream(durable) == stream and await ensure_durable(
                    js, stream, consumer_config(durable, subjects), start
                ):
                    log.info("durable_created", stream=stream, durable=durable, start=start)
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, old)
        log.warning("durable_retired", stream=stream, durable=old, from_sequence=start)


def durables(scope: Scope) -> list[tuple[str, list[str]]]:
    """The durables a role reads, with their subjects."""
    if scope.platform:
        return [
            (s.CORRELATOR_SINGLES_CONSUMER, [s.SINGLE_RESULTS_FILTER]),
            (s.CORRELATOR_PLATFORM_COMMANDS_CONSUMER, [s.PLATFORM_COMMANDS_FILTER]),
        ]
    parts = sorted(scope.partitions)
    return [
        (s.correlator_results_consumer(parts), [s.result_partition_filter(p) for p in parts]),
        (s.correlator_commands_consumer(parts), [s.routed_command_subject(p) for p in parts]),
    ]


def durable_stream(durable: str) -> str:
    results = durable.startswith("correlator-results")
    return s.RESULTS_STREAM if results else s.COMMANDS_STREAM


async def adopt(
    js: JetStreamContext, stream: str, durable: str, subjects: list[str], current: set[str]
) -> None:
    """Make the durable of a shard's partitions ready before its new owner reads it. Missing (the
    shards changed: a dependency joined or split partitions), it starts where the durables that
    read those partitions before stopped (the oldest of their ack floors: what comes after it
    may be delivered twice, which the correlator recognises, never lost). A durable of partitions
    no current shard reads any more is deleted once a current durable covers each of them.
    ``current``: the durables of every current role."""
    partitions = s.consumer_partitions(durable) or frozenset()
    infos = {
        info.name: info
        for info in await js.consumers_info(stream)
        if info.name.startswith(s.CORRELATOR_CONSUMER_PREFIX)
    }
    if durable not in infos:
        floors = [
            (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
            for name, info in infos.items()
            if (parts := s.consumer_partitions(name)) is not None and parts & partitions
        ]
        start = min(floors, default=None)
        await ensure_durable(js, stream, consumer_config(durable, subjects), start)
        log.info("durable_created", stream=stream, durable=durable, start=start)
        infos[durable] = await js.consumer_info(stream, durable)
    covered = {p for name in infos if name in current for p in s.consumer_partitions(name) or ()}
    for name in infos:
        parts = s.consumer_partitions(name)
        if name not in current and parts is not None and parts <= covered:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, name)
            log.info("durable_retired", stream=stream, durable=name)


class ZoneViews:
    """The platform role's view of every shard's ``ZoneView``s (the state bucket's ``zoneview.*``)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.catalog: KvCatalog[dict[str, ZoneView]] = KvCatalog(
            js,
            bucket=s.STATE_BUCKET,
            open_bucket=state_bucket,
            key=lambda shard: s.zone_view_key(shard),
            decode=VIEWS.validate_json,
            name="zone_views",
        )
        self.shards: set[int] = set()

    def merged(self) -> dict[str, ZoneView]:
        out: dict[str, ZoneView] = {}
        for key, views in self.catalog.entries.items():
            if not key.isdigit() or int(key) not in self.shards:
                continue  # a shard of an older shard map
            for zone, view in views.items():
                out[zone] = out[zone].merged(view) if zone in out else view
        return out


VIEWS: TypeAdapter[dict[str, ZoneView]] = TypeAdapter(dict[str, ZoneView])


class MakeCorrelator(Protocol):
    def __call__(
        self, store: CorrelatorStore, scope: Scope, zone_views: Callable[[], dict[str, ZoneView]] | None
    ) -> Correlator: ...


class Role:
    """One role this instance runs: its leases, its correlator, its consumers and ticks."""

    def __init__(self, name: str, scope: Scope, manager: Roles) -> None:
        self.name = name
        self.scope = scope
        self._m = manager
        self.correlator: Correlator | None = None
        self.active = False
        self._stop = asyncio.Event()
        self._leases = [
            Lease(manager.js, f"correlator.p{p}", manager.holder, manager.settings.lease_ttl)
            for p in sorted(scope.partitions)
        ] or [Lease(manager.js, f"correlator.{PLATFORM}", manager.holder, manager.settings.lease_ttl)]
        self.task = asyncio.create_task(self._run(), name=f"correlator-{name}")

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        consumers: list[DurableConsumer[ResultMessage] | DurableConsumer[Command]] = []
        ticks: list[asyncio.Task[None]] = []
        try:
            for lease in self._leases:
                if not await until_stopped(lease.acquire(), self._stop):
                    return
            correlator = await self._recovered()
            if correlator is None:
                return
            self.correlator = correlator
            current = self._m.current_durables()
            for durable, subjects in durables(self.scope):
                await adopt(self._m.js, durable_stream(durable), durable, subjects, current)
            consumers = self._consumers(correlator)
            for consumer in consumers:
                await consumer.start()
            ticks.append(asyncio.create_task(correlator.run_ticks(self._stop, after=self._after_tick)))
            if self.scope.platform:
                ticks.append(asyncio.create_task(correlator.run_drift_checks(self._stop)))
            self.active = True
            self._m.changed()
            log.info("role_acquired", role=self.name, partitions=sorted(self.scope.partitions))
            lost = [asyncio.ensure_future(lease.lost.wait()) for lease in self._leases]
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([*lost, stopping], return_when=asyncio.FIRST_COMPLETED)
            for waiter in (*lost, stopping):
                waiter.cancel()
            if not self._stop.is_set():
                log.error("role_lost", role=self.name)
        except Exception as exc:  # started again by the next check (``Roles._assign``)
            log.error("role_failed", role=self.name, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._stop.set()
            for tick in ticks:  # a tick cancelled mid-commit is finished from the journal
                tick.cancel()
            await asyncio.gather(*(consumer.stop() for consumer in consumers))
            for tick in ticks:
                with contextlib.suppress(asyncio.CancelledError):
                    await tick
            for lease in self._leases:
                await lease.release()
            was_active, self.active = self.active, False
            if was_active:
                self._m.changed()
                log.info("role_released", role=self.name)

    async def _recovered(self) -> Correlator | None:
        m = self._m
        while not self._stop.is_set():
            views = m.zone_views.merged if self.scope.platform else None
            try:
                store = CorrelatorStore(m.rt.db, m.js, await state_bucket(m.js))
                correlator = m.make(store, self.scope, views)
                await correlator.recover()
                return correlator
            except Exception as exc:
                log.warning("role_recover_failed", role=self.name, error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RETRY)
        return None

    def _consumers(
        self, correlator: Correlator
    ) -> list[DurableConsumer[ResultMessage] | DurableConsumer[Command]]:
        m = self._m
        if self.scope.platform:
            [(singles, singles_subjects), (commands, commands_subjects)] = durables(self.scope)

            async def route(command: Command) -> None:
                await m.route(command, correlator)

            return [
                DurableConsumer(
                    m.broker, SERVICE, stream=s.RESULTS_STREAM, durable=singles,
                    filter_subjects=singles_subjects, model=ResultMessage, handler=m.forward,
                ),
                DurableConsumer(
                    m.broker, SERVICE, stream=s.COMMANDS_STREAM, durable=commands,
                    filter_subjects=commands_subjects, model=Command, handler=route,
                ),
            ]  # fmt: skip
        [(results, results_subjects), (commands, commands_subjects)] = durables(self.scope)

        async def apply(message: ResultMessage) -> None:
            await correlator.apply_all(message.results)

        async def apply_group(messages: list[ResultMessage]) -> list[str | None]:
            return await correlator.apply_group([message.results for message in messages])

        return [
            DurableConsumer(
                m.broker, SERVICE, stream=s.RESULTS_STREAM, durable=results, filter_subjects=results_subjects,
                model=ResultMessage, handler=apply, group=apply_group, group_max=m.settings.results_group,
            ),
            DurableConsumer(
                m.broker, SERVICE, stream=s.COMMANDS_STREAM, durable=commands,
                filter_subjects=commands_subjects, model=Command, handler=correlator.command,
            ),
        ]  # fmt: skip

    async def _after_tick(self) -> None:
        """A shard: tell the platform role what it sees of its zones, when that changed."""
        correlator = self.correlator
        if correlator is None or self.scope.platform:
            return
        views = correlator.views()
        if views is None:
            return
        try:
            kv = await state_bucket(self._m.js)
            await kv.put(s.zone_view_key(self.scope.shard), VIEWS.dump_json(views))
        except Exception:
            correlator.views_unsent()
            raise


class Roles:
    """This instance's membership and the roles it runs (see the module docstring)."""

    def __init__(self, rt: Runtime, settings: CorrelatorSettings, make: MakeCorrelator) -> None:
        self.rt = rt
        self.js = rt.js
        self.broker = rt.broker
        self.settings = settings
        self.make = make
        self.holder = default_holder_id()
        self.me = member_name(self.holder)
        self.zone_views = ZoneViews(rt.js)
        self.running: dict[str, Role] = {}
        self._member = Lease(rt.js, f"correlator-member.{self.me}", self.holder, settings.lease_ttl)
        self._members: KvCatalog[bytes] | None = None
        self._leases_kv: KeyValue | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._systems: list[System] = []
        self._assigned = False
        self._progress = asyncio.Event()

    async def start(self) -> None:
        self._systems = await CorrelatorStore(self.rt.db, self.js, await state_bucket(self.js)).systems()
        await retire_v1_durables(self.js, role_scopes(self._systems))
        await self._member.acquire()
        self._members = KvCatalog(
            self.js,
            bucket=s.LEASES_BUCKET,
            open_bucket=lambda js: leases_bucket(js, self.settings.lease_ttl),
            key=s.correlator_member_key,
            decode=bytes,
            name="correlator_members",
            listener=lambda _m, _v: self._wake.set(),
        )
        await self._members.start()
        await self.zone_views.catalog.start()
        self._task = asyncio.create_task(self._manage(), name="correlator-roles")
        # Started = deciding: wait (a while at most) until the roles first given to this instance
        # run; their leases may still be held by an instance that died (one TTL) or be handed over.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT_TTLS * self.settings.lease_ttl + START_WAIT):
                while not (self._assigned and all(r.active for r in self.running.values())):
                    self._progress.clear()
                    await self._progress.wait()

    def changed(self) -> None:
        self._progress.set()
        PARTITIONS.set(sum(len(r.scope.partitions) for r in self.running.values() if r.active))
        PLATFORM_ROLE.set(int(any(r.active and r.scope.platform for r in self.running.values())))

    @property
    def systems(self) -> list[System]:
        """The systems as last read (every ``SYSTEMS_REFRESH`` seconds), for every role's correlator."""
        return self._systems

    def current_durables(self) -> set[str]:
        """The durables of every role of the current shards."""
        return {d for scope in role_scopes(self._systems).values() for d, _ in durables(scope)}

    async def members(self) -> set[str]:
        """This instance and every other whose key still lives. The catalog follows puts and
        deletes, but a key that expires (``max_age``: the instance died) leaves no marker in the
        leases bucket, so each key the catalog knows is read again: gone means dead."""
        entries = self._members.entries if self._members is not None else {}
        alive = {self.me}
        kv = self._leases_kv or await leases_bucket(self.js, self.settings.lease_ttl)
        self._leases_kv = kv
        for member in entries:
            if member == self.me:
                continue
            try:
                await kv.get(s.correlator_member_key(member))
            except KeyNotFoundError:
                continue
            alive.add(member)
        return alive

    async def _manage(self) -> None:
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        while not self._stop.is_set():
            try:
                if self._member.lost.is_set():  # NATS was away longer than a TTL: register again
                    self._member = Lease(self.js, self._member.name, self.holder, self.settings.lease_ttl)
                    await self._member.acquire()
                if loop.time() - refreshed >= SYSTEMS_REFRESH:
                    self._systems = await CorrelatorStore(
                        self.rt.db, self.js, await state_bucket(self.js)
                    ).systems()
                    refreshed = loop.time()
                await self._assign()
            except Exception as exc:  # MongoDB away: the roles running go on
                log.warning("roles_check_failed", error=f"{type(exc).__name__}: {exc}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), ROLE_CHECK)

    async def _assign(self) -> None:
        scopes = role_scopes(self._systems)
        self.zone_views.shards = {sc.shard for sc in scopes.values() if not sc.platform}
        members = await self.members()
        mine = {name for name in scopes if owner(name, members) == self.me}
        for name, role in list(self.running.items()):
            if name not in mine or role.scope != scopes[name] or role.task.done():
                del self.running[name]
                await role.stop()
        for name in sorted(mine - set(self.running)):
            self.running[name] = Role(name, scopes[name], self)
        self._assigned = True
        self.changed()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*(role.stop() for role in self.running.values()))
        self.running.clear()
        self.changed()
        if self._members is not None:
            await self._members.stop()
        await self.zone_views.catalog.stop()
        await self._member.release()

    # -- the platform role's routing ---------------------------------------------------------------
    async def forward(self, message: ResultMessage) -> None:
        """Single results go on to their partition as one-result batches (the id of each is its
        result's own identity, so a forward repeated after a crash is stored once)."""
        for result in message.results:
            batch = ResultBatch(
                prober_id=result.prober_id, zone=result.zone, results=[result],
                batch_id=f"single.{result.monitor_id}.{result.zone}.{result.prober_id}.{result.started_at.isoformat()}",
            )  # fmt: skip
            await self.js.publish(
                s.result_batch_subject(result.zone, s.result_partition(result.system_id)),
                batch.model_dump_json().encode(),
                stream=s.RESULTS_STREAM,
                headers={"Nats-Msg-Id": batch.batch_id},
                timeout=5.0,
            )

    async def route(self, command: Command, platform: Correlator) -> None:
        """Apply a command about the platform's own incidents (or a report of no system); send any
        other on to the partition of its incident's system."""
        system_id: str | None
        if command.action == "open_manual":
            system_id = command.system_id
        else:
            incident_id = command.incident_id or ""
            known = platform.incidents.by_id.get(incident_id)
            found = known or await platform.store.get_incident(incident_id)
            system_id = found.system_id if found is not None else None
        if system_id is None or system_id == PLATFORM_SYSTEM:
            await platform.command(command)
            return
        await self.js.publish(
            s.routed_command_subject(s.result_partition(system_id)),
            command.model_dump_json().encode(),
            stream=s.COMMANDS_STREAM,
            headers={"Nats-Msg-Id": f"routed-{command.command_id}"},
            timeout=5.0,
        )
