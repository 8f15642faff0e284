"""The backlog helpers on a real nats-server: messages waiting or unacknowledged, summed over
several durables; a durable that does not exist is not drained."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from fao.schemas import subjects as s
from fao.testing.backlog import backlog, correlator_backlog, correlator_drained, correlator_durables, drained

DURABLES = ("test-p0", "test-p1")


async def test_backlog_sums_pending_and_unacknowledged_over_the_durables(js: JetStreamContext) -> None:
    for partition, durable in enumerate(DURABLES):
        await js.add_consumer(
            s.RESULTS_STREAM,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=s.result_partition_filter(partition),
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
    assert await backlog(js, s.RESULTS_STREAM, DURABLES) == 0
    assert await drained(js, s.RESULTS_STREAM, DURABLES)
    for partition in (0, 0, 1):
        await js.publish(s.result_batch_subject("default", partition), b"{}")
    assert await backlog(js, s.RESULTS_STREAM, DURABLES) == 3
    sub = await js.pull_subscribe_bind(DURABLES[0], s.RESULTS_STREAM)
    [first] = await sub.fetch(1, timeout=5)
    assert await backlog(js, s.RESULTS_STREAM, DURABLES) == 3, "delivered, not acknowledged: still due"
    await first.ack_sync()
    assert await backlog(js, s.RESULTS_STREAM, DURABLES) == 2
    for msg in await sub.fetch(1, timeout=5):
        await msg.ack_sync()
    assert await backlog(js, s.RESULTS_STREAM, DURABLES[:1]) == 0
    assert not await drained(js, s.RESULTS_STREAM, DURABLES), "the second partition still waits"


async def test_a_missing_durable_is_not_drained(js: JetStreamContext) -> None:
    assert await backlog(js, s.RESULTS_STREAM, ("nobody",)) is None
    assert not await drained(js, s.RESULTS_STREAM, ("nobody",))
    # no correlator ran: it has no durable
    assert await correlator_backlog(js) is None
    assert await correlator_backlog(js, s.COMMANDS_STREAM) is None
    assert not await correlator_drained(js, s.COMMANDS_STREAM)


async def test_the_correlators_durables_are_those_named_correlator(js: JetStreamContext) -> None:
    for durable in ("other-service", s.correlator_results_consumer([0, 1]), s.CORRELATOR_SINGLES_CONSUMER):
        await js.add_consumer(
            s.RESULTS_STREAM, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT)
        )
    assert await correlator_durables(js) == sorted(
        [s.correlator_results_consumer([0, 1]), s.CORRELATOR_SINGLES_CONSUMER]
    )
    await js.publish(s.result_batch_subject("default", 0), b"{}")
    assert await correlator_backlog(js) == 2, "one message, waiting in both"
