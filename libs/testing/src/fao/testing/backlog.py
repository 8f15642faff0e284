"""What a service still has to handle on a stream: the messages its durable consumers have not
delivered yet or not seen acknowledged, summed over its durables.

The correlator reads each stream through several durables (one per shard, named after its
partitions, and one for single results; on the commands stream, one for commands as people send
them and one per shard for the commands routed on to it: ``fao.correlator.roles``), all named
``correlator-…``: it has drained a stream when every one of them has nothing pending and nothing
awaiting its ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from fao.schemas import subjects as s


async def correlator_durables(js: JetStreamContext, stream: str = s.RESULTS_STREAM) -> list[str] | None:
    """The correlator's durables on ``stream`` now; None when there is none (no correlator ran
    yet) or JetStream did not answer now."""
    try:
        infos = await js.consumers_info(stream)
    except (NotFoundError, NatsTimeoutError, NoRespondersError):
        return None
    names = sorted(i.name for i in infos if i.name.startswith(s.CORRELATOR_CONSUMER_PREFIX))
    return names or None


async def consumer_infos(
    js: JetStreamContext, stream: str, durables: Iterable[str]
) -> list[ConsumerInfo] | None:
    """The state of each of ``durables`` on ``stream``; None when one of them (or the stream) does
    not exist (yet: the service that creates it has not started), or JetStream did not answer now
    (a busy server: ask again)."""
    try:
        return list(await asyncio.gather(*(js.consumer_info(stream, d) for d in durables)))
    except (NotFoundError, NatsTimeoutError, NoRespondersError):
        return None


async def backlog(js: JetStreamContext, stream: str, durables: Iterable[str]) -> int | None:
    """Messages of ``stream`` that ``durables`` still have to deliver or see acknowledged (summed);
    None when one of them does not exist (yet), or JetStream did not answer now."""
    infos = await consumer_infos(js, stream, durables)
    if infos is None:
        return None
    return sum(int(i.num_pending or 0) + int(i.num_ack_pending or 0) for i in infos)


async def drained(js: JetStreamContext, stream: str, durables: Iterable[str]) -> bool:
    """Every one of ``durables`` exists and has nothing pending and nothing unacknowledged."""
    return await backlog(js, stream, durables) == 0


async def correlator_backlog(js: JetStreamContext, stream: str = s.RESULTS_STREAM) -> int | None:
    """What the correlator still has to handle on ``stream`` (the results stream, or the commands
    stream), over all its durables; None when it has none (no correlator ran yet), or JetStream
    did not answer now."""
    durables = await correlator_durables(js, stream)
    return None if durables is None else await backlog(js, stream, durables)


async def correlator_drained(js: JetStreamContext, stream: str = s.RESULTS_STREAM) -> bool:
    """The correlator has durables on ``stream``, and none has anything pending or unacknowledged."""
    return await correlator_backlog(js, stream) == 0
