"""A shard's durables on a real nats-server: named after its partitions, started where the durables
that read those partitions before stopped, and the old ones retired once every partition has a
current durable (``fao.correlator.roles.adopt``)."""

from __future__ import annotations

from nats.js import JetStreamContext

from fao.correlator.roles import adopt, retire_v1_durables, role_scopes
from fao.runtime.consume import consumer_config, ensure_durable
from fao.schemas import subjects as s

OLD = s.correlator_results_consumer([1, 5])
ONE = s.correlator_results_consumer([1])
FIVE = s.correlator_results_consumer([5])


def test_durable_names_carry_their_partitions() -> None:
    assert OLD == "correlator-results-0022"
    assert s.consumer_partitions(OLD) == frozenset({1, 5})
    assert s.consumer_partitions(s.correlator_commands_consumer(range(16))) == frozenset(range(16))
    assert s.consumer_partitions(s.CORRELATOR_RESULTS_CONSUMER_V1) == frozenset(range(16))
    assert s.consumer_partitions(s.CORRELATOR_SINGLES_CONSUMER) is None
    assert s.consumer_partitions("correlator-results-zzzz") is None


async def _names(js: JetStreamContext) -> set[str]:
    return {i.name for i in await js.consumers_info(s.RESULTS_STREAM)}


async def test_a_split_shard_starts_where_the_old_durable_stopped_and_retires_it_when_covered(
    js: JetStreamContext,
) -> None:
    subjects = [s.result_partition_filter(p) for p in (1, 5)]
    await ensure_durable(js, s.RESULTS_STREAM, consumer_config(OLD, subjects))
    for partition in (1, 5, 1, 5):
        await js.publish(s.result_batch_subject("default", partition), b"{}")
    sub = await js.pull_subscribe_bind(OLD, s.RESULTS_STREAM)
    for msg in await sub.fetch(2, timeout=5):  # the old owner handled the first two
        await msg.ack_sync()
    await sub.unsubscribe()

    current = {ONE, FIVE}
    await adopt(js, s.RESULTS_STREAM, ONE, [s.result_partition_filter(1)], current)
    one = await js.consumer_info(s.RESULTS_STREAM, ONE)
    assert one.num_pending == 1, "partition 1's third message only: the first was handled"
    assert OLD in await _names(js), "partition 5 has no current durable yet"
    await adopt(js, s.RESULTS_STREAM, FIVE, [s.result_partition_filter(5)], current)
    assert (await js.consumer_info(s.RESULTS_STREAM, FIVE)).num_pending == 1
    assert await _names(js) == {ONE, FIVE}, "retired once every partition of it is covered"
    await adopt(js, s.RESULTS_STREAM, ONE, [s.result_partition_filter(1)], current)
    assert (await js.consumer_info(s.RESULTS_STREAM, ONE)).num_pending == 1, (
        "an existing one is left as it is"
    )


async def test_a_new_shard_with_no_durable_before_reads_from_the_beginning(js: JetStreamContext) -> None:
    await js.publish(s.result_batch_subject("default", 3), b"{}")
    durable = s.correlator_results_consumer([3])
    await adopt(js, s.RESULTS_STREAM, durable, [s.result_partition_filter(3)], {durable})
    assert (await js.consumer_info(s.RESULTS_STREAM, durable)).num_pending == 1


async def test_an_upgrade_moves_the_durables_of_the_release_before_to_the_current_shards(
    js: JetStreamContext,
) -> None:
    """The release before read every result through one durable: the current shards' durables
    start where it stopped (nothing it acknowledged comes again, nothing after is skipped), and it
    is deleted."""
    await ensure_durable(
        js, s.RESULTS_STREAM, consumer_config(s.CORRELATOR_RESULTS_CONSUMER_V1, [s.RESULTS_SUBJECTS])
    )
    for partition in (1, 5, 1, 5):
        await js.publish(s.result_batch_subject("default", partition), b"{}")
    await js.publish(s.result_subject("web-home"), b"{}")
    sub = await js.pull_subscribe_bind(s.CORRELATOR_RESULTS_CONSUMER_V1, s.RESULTS_STREAM)
    for msg in await sub.fetch(2, timeout=5):
        await msg.ack_sync()
    await sub.unsubscribe()

    await retire_v1_durables(js, role_scopes([]))
    names = await _names(js)
    assert s.CORRELATOR_RESULTS_CONSUMER_V1 not in names
    one = await js.consumer_info(s.RESULTS_STREAM, s.correlator_results_consumer([1]))
    five = await js.consumer_info(s.RESULTS_STREAM, s.correlator_results_consumer([5]))
    singles = await js.consumer_info(s.RESULTS_STREAM, s.CORRELATOR_SINGLES_CONSUMER)
    assert (one.num_pending, five.num_pending, singles.num_pending) == (1, 1, 1)
    assert len([n for n in names if s.consumer_partitions(n) is not None]) == s.RESULT_PARTITIONS
