"""Deliberate JetStream acknowledgement for every Fao consumer.

FastStream's default policy *terminates* a message whose handler raises, which would lose it. Fao
handlers go through ``process`` instead:

- the body does not match the contract → the raw message goes to ``fao.deadletter.<service>`` with
  the validation error, a log line is written, and the message is acknowledged so it never blocks
  the stream;
- the handler raises ``Rejected(reason)`` → the message is valid but implausible (a result for a
  monitor nobody configured, a result from the future): it is dead-lettered with that reason and
  acknowledged at once, with no retries;
- the handler raises anything else (store or bus unavailable...) → ``nak`` with an exponential
  delay; the message is redelivered and nothing is lost. A message whose handler still fails on its
  ``max_deliveries``-th delivery (default ``MAX_DELIVERIES``) is dead-lettered with the reason
  "gave up after N deliveries: <last error>" and acknowledged, so one poisoned message cannot
  hold an ordered consumer forever;
- the handler returns → ``ack``, after its effects are durable.

Dead letters keep the original body, unless body plus headers would not fit the dead-letter stream
(or the server's max_payload): then the first ``TRUNCATED_BODY`` bytes are kept, with headers
``Fao-Original-Size``, ``Fao-Original-Sha256`` and ``Fao-Truncated: true``. A dead letter that
cannot be written (the stream is missing, the bus is down) is itself handled: the message is
``nak``ed with the retry delay (never acknowledged, so never lost) and the failure logged once per
delivery; a later delivery dead-letters it. As a server-side safety net every consumer has
``max_deliver`` ``MAX_DELIVER_MARGIN`` above ``max_deliveries``, so the server stops redelivering
even if giving up keeps failing.

Bodies are read tolerantly: bus models (``fao.schemas.base.BusModel``) ignore unknown fields, so a
newer producer that adds an optional field never sends an older consumer's messages to dead letters.

Consumers use a short ``ACK_WAIT`` so a message held by a crashed process is redelivered within
seconds; while a handler is still working, ``process`` tells the server so (``in_progress``)
every ``HEARTBEAT`` seconds, so a slow handler is not mistaken for a dead one.

A consumer may also take *groups* (``subscribe(group=..., group_max=N)``): when a message arrives
and the server says more are pending (``num_pending`` of its delivery), up to ``N - 1`` of them are
fetched at once (never waited for: an idle stream gives a group of one without delay) and handed
to the group handler together, in stream order, with one heartbeat for all. The group handler
makes all their effects durable at once and returns a verdict per message (``None``: applied, or a
``Rejected`` reason); then every message is acknowledged (or dead-lettered with its reason). If the
group handler raises, each message of the group goes through ``process`` on its own, so failures,
retries and giving up stay per message exactly as above: one poisoned message never takes its
neighbours with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Generic, Literal, TypeVar

import nats.errors
import nats.js.errors
import structlog
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import INBOX_PREFIX, DeliverPolicy
from nats.js.api import AckPolicy as AckPolicyApi
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from fao.runtime.bus import DEAD_LETTERS, KIB, MessageTooLarge, check_size, headers_size
from fao.schemas import subjects

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

ACK_WAIT = 10.0
HEARTBEAT = 3.0
# How long one pull request lingers when the stream is idle (a message still arrives at once).
# Short values make a nats-py race likelier: fetch() can raise asyncio.TimeoutError, which
# FastStream 0.7.8's pull loop does not suppress; its supervisor restarts the loop and logs an
# error with a traceback. 5 s keeps that rare; shutdown waits at most this long for the fetch.
PULL_TIMEOUT = 5.0
# Deliveries of one message before a failing handler is given up on (dead-lettered). With
# ``retry_delay`` the 20th delivery comes about 7 minutes after the first.
MAX_DELIVERIES = 20
# The server's own limit (``max_deliver``) is this many deliveries above ``max_deliveries``: room
# for a few more attempts at dead-lettering when giving up fails, never endless redelivery.
MAX_DELIVER_MARGIN = 5
# How much of a body too large for the dead-letter stream is kept.
TRUNCATED_BODY = 16 * KIB


class Rejected(Exception):  # noqa: N818  # a verdict on the message, not an error of the handler
    """Raised by a handler for a message that matches its contract but must not be applied (a
    result for an unknown monitor, from the future): dead-lettered with ``reason`` and acknowledged
    at once, without retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ordered_pull() -> PullSub[Literal[False]]:
    """Pull one message at a time, so messages are handled in stream order (a monitor's results,
    an incident's events). FastStream runs the items of a larger fetch concurrently, so they can
    reach the handler out of order; its batch mode keeps order but waits up to the pull timeout
    to fill a batch (seconds of alert latency). Cost, measured with
    ``bench/correlator_throughput.py --healthy``: 434 results/s against 711/s with batches of 64."""
    return PullSub(batch_size=1, timeout=PULL_TIMEOUT)


MESSAGES = Counter("fao_messages_total", "Bus messages handled", ["service", "outcome"])
GROUPS = Counter(
    "fao_message_groups_total", "Groups of several messages handled at once", ["service", "outcome"]
)
# How long fetching the rest of a group may take: the messages are known to be pending, so they
# come at once; this only bounds a race with another consumer of the same durable.
GROUP_FETCH_TIMEOUT = 0.2

GroupHandler = Callable[[list[M]], Awaitable[Sequence[str | None]]]
# How long ``DurableConsumer.stop`` lets a message being handled finish.
STOP_GRACE = 3.0


def retry_delay(num_delivered: int, base: float = 0.5, cap: float = 30.0) -> float:
    """0.5 s, 1 s, 2 s ... capped: how long to wait before a failed message is redelivered."""
    return float(min(cap, base * 2 ** max(0, num_delivered - 1)))


async def dead_letter(broker: NatsBroker, service: str, original: Msg, reason: str) -> None:
    """Keep the original body; the reason and origin go in headers (one line each: NATS headers
    cannot hold line breaks). The stream sequence makes a repeated dead-lettering a duplicate. A
    body that would not fit the dead-letter stream with these headers is truncated (see the module
    docstring). Raises when the dead letter could not be stored."""
    nc = broker.connection
    subject = subjects.dead_letter_subject(service)
    headers = {
        "Fao-Reason": " ".join(reason.split())[:500],
        "Fao-Original-Subject": original.subject,
        "Nats-Msg-Id": f"{service}.{original.metadata.stream}.{original.metadata.sequence.stream}",
    }
    limit = DEAD_LETTERS.msg_limit(nc.max_payload)
    body = original.data
    try:
        check_size(subject, body, limit, headers=headers)
    except MessageTooLarge:
        headers["Fao-Original-Size"] = str(len(body))
        headers["Fao-Original-Sha256"] = hashlib.sha256(body).hexdigest()
        headers["Fao-Truncated"] = "true"
        body = body[: max(0, min(TRUNCATED_BODY, limit - headers_size(headers)))]
        check_size(subject, body, limit, headers=headers)
        log.warning(
            "dead_letter_truncated", subject=original.subject, size=len(original.data), kept=len(body)
        )
    await nc.jetstream().publish(
        subject, body, stream=subjects.DEAD_LETTER_STREAM, headers=headers, timeout=5.0
    )


async def undecoded(_: object) -> None:
    """FastStream ``decoder`` for every Fao subscriber: leave the body alone. ``process`` validates
    the raw bytes itself, so a message that is not even JSON is dead-lettered like any other bad
    one, instead of failing inside FastStream's decoder and coming back forever."""
    return


async def _heartbeat(*msgs: Msg) -> None:
    """Tell the server the messages are still being worked on; stops quietly if it cannot."""
    try:
        while True:
            await asyncio.sleep(HEARTBEAT)
            for msg in msgs:
                await msg.in_progress()
    except Exception as exc:  # the handler's own outcome decides ack/nak; this is only a keep-alive
        log.debug("heartbeat_stopped", error=str(exc))


def _invalid(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


async def process(
    broker: NatsBroker,
    service: str,
    msg: Msg,
    model: type[M],
    handler: Callable[[M], Awaitable[None]],
    max_deliveries: int = MAX_DELIVERIES,
) -> None:
    """Validate, handle, and settle one JetStream message (nats-py's ``Msg``: FastStream's
    ``NatsMessage.raw_message``, or one item of a batch) as described in the module docstring."""
    try:
        item = model.model_validate_json(msg.data)
    except ValidationError as exc:
        await _dead_letter_and_ack(broker, service, msg, _invalid(exc), "dead_letter", "message_invalid")
        return
    beat = asyncio.create_task(_heartbeat(msg))
    try:
        await handler(item)
    except Rejected as exc:
        await _dead_letter_and_ack(broker, service, msg, exc.reason, "rejected", "message_rejected")
        return
    except Exception as exc:
        delivered = msg.metadata.num_delivered or 1
        error = f"{type(exc).__name__}: {exc}"
        if delivered >= max_deliveries:
            reason = f"gave up after {delivered} deliveries: {error}"
            await _dead_letter_and_ack(broker, service, msg, reason, "gave_up", "message_given_up")
            return
        delay = retry_delay(delivered)
        log.warning("message_retry", subject=msg.subject, delivered=delivered, delay_s=delay, error=error)
        await msg.nak(delay=delay)
        MESSAGES.labels(service, "retry").inc()
        return
    finally:
        beat.cancel()
    await msg.ack()
    MESSAGES.labels(service, "ok").inc()


async def process_group(
    broker: NatsBroker,
    service: str,
    msgs: list[Msg],
    model: type[M],
    handler: Callable[[M], Awaitable[None]],
    group: GroupHandler[M],
    max_deliveries: int = MAX_DELIVERIES,
) -> None:
    """Validate ``msgs`` (the invalid ones are dead-lettered), hand the rest to ``group`` at once,
    and settle each by its verdict; if ``group`` raises, settle each through ``process`` on its own
    (see the module docstring)."""
    valid: list[tuple[Msg, M]] = []
    for msg in msgs:
        try:
            valid.append((msg, model.model_validate_json(msg.data)))
        except ValidationError as exc:
            await _dead_letter_and_ack(broker, service, msg, _invalid(exc), "dead_letter", "message_invalid")
    if not valid:
        return
    kept = [msg for msg, _ in valid]
    beat = asyncio.create_task(_heartbeat(*kept))
    verdicts: list[str | None] | None = None
    try:
        verdicts = list(await group([item for _, item in valid]))
        if len(verdicts) != len(valid):
            raise RuntimeError(f"{len(verdicts)} verdicts for {len(valid)} messages")
    except Exception as exc:
        verdicts = None
        log.warning("message_group_failed", messages=len(valid), error=f"{type(exc).__name__}: {exc}")
    finally:
        beat.cancel()
    if verdicts is None:
        GROUPS.labels(service, "one_by_one").inc()
        for msg in kept:
            await process(broker, service, msg, model, handler, max_deliveries)
        return
    GROUPS.labels(service, "ok").inc()
    for msg, reason in zip(kept, verdicts, strict=True):
        if reason is None:
            await msg.ack()
            MESSAGES.labels(service, "ok").inc()
        else:
            await _dead_letter_and_ack(broker, service, msg, reason, "rejected", "message_rejected")


async def _dead_letter_and_ack(
    broker: NatsBroker, service: str, msg: Msg, reason: str, outcome: str, event: str
) -> None:
    """Dead-letter ``msg`` with ``reason``, then acknowledge it. When the dead letter cannot be
    written, ``nak`` it with the retry delay instead (one log line), so a later delivery tries
    again: never acknowledged unrecorded, never redelivered in a tight loop."""
    delivered = msg.metadata.num_delivered or 1
    try:
        await dead_letter(broker, service, msg, reason)
    except Exception as exc:
        delay = retry_delay(delivered)
        log.error(
            "dead_letter_failed", subject=msg.subject, delivered=delivered, delay_s=delay, reason=reason,
            error=f"{type(exc).__name__}: {exc}",
        )  # fmt: skip
        await msg.nak(delay=delay)
        MESSAGES.labels(service, "dead_letter_failed").inc()
        return
    log.error(event, subject=msg.subject, delivered=delivered, reason=reason)
    await msg.ack()
    MESSAGES.labels(service, outcome).inc()


def subscribe(
    broker: NatsBroker,
    service: str,
    *,
    subject: str,
    stream: str,
    durable: str,
    model: type[M],
    handler: Callable[[M], Awaitable[None]],
    title: str,
    description: str,
    max_deliveries: int = MAX_DELIVERIES,
    group: GroupHandler[M] | None = None,
    group_max: int = 1,
) -> None:
    """Register a durable, ordered consumer with Fao's whole policy in one place: stream owned by
    ``fao.runtime.bus`` (not declared here), ``ACK_WAIT`` kept alive by the heartbeat, one message
    per pull, manual ack, raw bytes (``undecoded``), and every message settled by ``process``
    (dead-lettered once its handler has failed ``max_deliveries`` times; the server gives up
    ``MAX_DELIVER_MARGIN`` deliveries later if even that keeps failing). With ``group`` and
    ``group_max`` > 1, messages already pending behind the one pulled are taken with it, up to
    ``group_max``, and settled by ``process_group``. The consumer config is applied when the
    durable is created: nats-py binds to an existing durable as it is."""
    if max_deliveries < 1:
        raise ValueError("max_deliveries must be at least 1")
    if group_max < 1 or (group_max > 1 and group is None):
        raise ValueError("group_max must be at least 1, and above 1 only with a group handler")
    # A broker connecting as a NATS user takes pull deliveries on that user's own inboxes (the only
    # ones it may subscribe to, ``fao.runtime.auth``); FastStream would otherwise use ``_INBOX.``.
    inbox: str | None = getattr(broker, "inbox_prefix", None)

    subscriber = broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        config=ConsumerConfig(ack_wait=ACK_WAIT, max_deliver=max_deliveries + MAX_DELIVER_MARGIN),
        pull_sub=ordered_pull(),
        ack_policy=AckPolicy.MANUAL,
        decoder=undecoded,
        inbox_prefix=f"{inbox}.".encode() if inbox else INBOX_PREFIX,
        title=title,
        description=description,
    )

    async def on_message(msg: NatsMessage) -> None:
        pull = getattr(subscriber, "subscription", None)
        pulled = pull if isinstance(pull, JetStreamContext.PullSubscription) else None
        await _settle(
            broker, service, msg.raw_message, pulled, model, handler, group, group_max, max_deliveries
        )

    subscriber(on_message)


async def _settle(
    broker: NatsBroker,
    service: str,
    first: Msg,
    pull: JetStreamContext.PullSubscription | None,
    model: type[M],
    handler: Callable[[M], Awaitable[None]],
    group: GroupHandler[M] | None,
    group_max: int,
    max_deliveries: int,
) -> None:
    """Settle ``first``, with the messages pending behind it as a group when a group handler is
    given (see the module docstring)."""
    pending = first.metadata.num_pending or 0
    if group is None or group_max < 2 or pending < 1 or pull is None:
        await process(broker, service, first, model, handler, max_deliveries)
        return
    more: list[Msg] = []
    try:
        more = await pull.fetch(batch=min(group_max - 1, pending), timeout=GROUP_FETCH_TIMEOUT)
    except (TimeoutError, nats.errors.TimeoutError):
        pass  # taken by another consumer meanwhile: a group of one
    except Exception as exc:  # the bus went away: settle the first one; the rest are redelivered
        log.warning("message_group_fetch_failed", error=f"{type(exc).__name__}: {exc}")
    await process_group(broker, service, [first, *more], model, handler, group, max_deliveries)


def consumer_config(
    durable: str, filter_subjects: Sequence[str], max_deliveries: int = MAX_DELIVERIES
) -> ConsumerConfig:
    """A durable's configuration under Fao's policy (explicit acks, ``ACK_WAIT``, bounded
    deliveries), reading ``filter_subjects`` (one or more)."""
    one = len(filter_subjects) == 1
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subjects[0] if one else None,
        filter_subjects=None if one else list(filter_subjects),
        ack_policy=AckPolicyApi.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_deliver=max_deliveries + MAX_DELIVER_MARGIN,
    )


async def ensure_durable(
    js: JetStreamContext, stream: str, config: ConsumerConfig, start_sequence: int | None = None
) -> bool:
    """Create the durable ``config`` names unless it exists (an existing one is left as it is);
    ``start_sequence``: a new one starts at that stream sequence instead of the beginning. True
    when it was created."""
    assert config.durable_name is not None
    try:
        await js.consumer_info(stream, config.durable_name)
        return False
    except nats.js.errors.NotFoundError:
        pass
    if start_sequence is not None:
        config = replace(config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_sequence)
    await js.add_consumer(stream, config)
    return True


class DurableConsumer(Generic[M]):
    """A durable consumer started and stopped while the service runs (the correlator's partitions
    move between instances), under the same policy as ``subscribe``: one message per pull, the
    messages pending behind it as a group when ``group`` is given, every message settled by
    ``process``/``process_group``. The durable itself (``ensure_durable``) outlives it: the next
    holder goes on where this one stopped."""

    def __init__(
        self,
        broker: NatsBroker,
        service: str,
        *,
        stream: str,
        durable: str,
        filter_subjects: Sequence[str],
        model: type[M],
        handler: Callable[[M], Awaitable[None]],
        group: GroupHandler[M] | None = None,
        group_max: int = 1,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> None:
        self.durable = durable
        self._broker = broker
        self._service = service
        self._stream = stream
        self._filters = list(filter_subjects)
        self._model = model
        self._handler = handler
        self._group = group
        self._group_max = group_max
        self._max_deliveries = max_deliveries
        self._pull: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False

    async def start(self) -> None:
        """Bind to the durable (creating it if needed) and start pulling."""
        js = self._broker.connection.jetstream()
        await ensure_durable(
            js, self._stream, consumer_config(self.durable, self._filters, self._max_deliveries)
        )
        inbox: str | None = getattr(self._broker, "inbox_prefix", None)
        self._pull = await js.pull_subscribe_bind(
            self.durable, self._stream, inbox_prefix=f"{inbox}.".encode() if inbox else INBOX_PREFIX
        )
        self._task = asyncio.create_task(self._run(self._pull), name=f"consume-{self.durable}")

    async def _run(self, pull: JetStreamContext.PullSubscription) -> None:
        failing = False
        while not self._stopping:
            try:
                [first] = await pull.fetch(1, timeout=PULL_TIMEOUT)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # the bus away: try again (the connection reconnects by itself)
                if not failing:
                    log.warning(
                        "consumer_fetch_failed", durable=self.durable, error=f"{type(exc).__name__}: {exc}"
                    )
                failing = True
                await asyncio.sleep(1.0)
                continue
            failing = False
            self._busy = True
            try:
                await _settle(
                    self._broker, self._service, first, pull, self._model, self._handler,
                    self._group, self._group_max, self._max_deliveries,
                )  # fmt: skip
            finally:
                self._busy = False

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop pulling: a message being handled is settled first, for ``grace`` seconds at most
        (then it is abandoned like a crash would: not acknowledged, so delivered again to the
        durable's next holder); a pull waiting for messages is abandoned at once."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if self._busy:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pull, self._pull = self._pull, None
        if pull is not None:
            with contextlib.suppress(Exception):
                await pull.unsubscribe()
