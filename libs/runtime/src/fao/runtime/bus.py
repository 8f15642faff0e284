"""JetStream streams, KV buckets and the screenshots object store, created idempotently at start-up by every service.

Creating is safe to repeat: an existing stream with a different configuration is updated to this
one (so a new release can change retention or limits), never deleted.

Message sizes. Every stream has a ``max_msg_size`` (body plus headers, as the server counts it) safely
below the server's ``max_payload`` (from the INFO the client got; nats-server's default is 1 MiB):
a body over it is refused by the stream (``BadRequestError`` 10054), so no consumer ever receives
something it could not dead-letter. The dead-letter stream takes anything just under
``max_payload``. A HPUB bigger than ``max_payload`` makes the server close the connection (nats-py
checks the body alone, not the headers), so producers check the size first: ``check_size`` raises
``MessageTooLarge`` with the subject, size and limit before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from fao.schemas import subjects

log = structlog.get_logger()

HOUR = 3600.0
DAY = 24 * HOUR
KIB = 1024

# nats-server's default max_payload; the limits below assume at least this much.
DEFAULT_MAX_PAYLOAD = 1024 * KIB
# What the dead-letter stream's limit leaves below the server's max_payload.
PAYLOAD_HEADROOM = 4 * KIB


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age: float
    duplicate_window: float
    # Largest message (body + headers) the stream stores; None: just under the server's max_payload.
    max_msg_size: int | None = None

    def msg_limit(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
        """The stream's limit on a server whose max_payload is ``max_payload`` (never above it)."""
        under = max_payload - PAYLOAD_HEADROOM
        return under if self.max_msg_size is None else min(self.max_msg_size, under)

    def config(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            storage=StorageType.FILE,
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
            discard=DiscardPolicy.OLD,
            max_msg_size=self.msg_limit(max_payload),
        )


STREAMS = [
    # Raw results are only needed until the correlator has folded them into monitor state. A result
    # is a few hundred bytes (its detail is at most 500 characters).
    StreamSpec(
        subjects.RESULTS_STREAM,
        [subjects.RESULTS_SUBJECTS],
        max_age=HOUR,
        duplicate_window=120.0,
        max_msg_size=64 * KIB,
    ),
    # The public incident history: long retention so the reporter can rebuild its read model. An
    # event carries a full incident snapshot (monitors, dependants, maintenance spans, notes).
    StreamSpec(
        subjects.INCIDENTS_STREAM,
        [subjects.INCIDENTS_SUBJECTS],
        max_age=400 * DAY,
        duplicate_window=DAY,
        max_msg_size=512 * KIB,
    ),
    # Operator commands and the correlator's answers to them (rejections); the correlator reads
    # only the commands, senders (gateway, CLI) watch the outcomes.
    StreamSpec(
        subjects.COMMANDS_STREAM,
        [subjects.COMMANDS_SUBJECTS, subjects.COMMAND_OUTCOMES_SUBJECTS],
        max_age=30 * DAY,
        duplicate_window=DAY,
        max_msg_size=64 * KIB,
    ),
    # Anything a consumer could not handle, with its reason; just under max_payload, so a message of
    # any other stream fits with the dead-letter headers (``fao.runtime.consume.dead_letter``
    # truncates what still would not).
    StreamSpec(
        subjects.DEAD_LETTER_STREAM, [subjects.DEAD_LETTER_SUBJECTS], max_age=90 * DAY, duplicate_window=120.0
    ),
]
DEAD_LETTERS = STREAMS[-1]

STREAM_EXISTS_WITH_OTHER_CONFIG = 10058


class MessageTooLarge(ValueError):  # noqa: N818  # named for what happened, like the NATS errors
    """A message was refused before publishing: body plus headers over the limit of its stream."""

    def __init__(self, subject: str, size: int, limit: int) -> None:
        super().__init__(f"message on {subject} is {size} bytes, over the {limit}-byte limit of its stream")
        self.subject = subject
        self.size = size
        self.limit = limit


def headers_size(headers: Mapping[str, str] | None) -> int:
    """Bytes ``headers`` take in a HPUB as nats-py writes it (``NATS/1.0``, ``Key: value`` lines)."""
    if not headers:
        return 0
    lines = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
    return len(b"NATS/1.0\r\n") + lines + 2


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)


def max_msg_size(subject: str, max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """The limit of the Fao stream that stores ``subject``; ValueError when none does."""
    for spec in STREAMS:
        if any(_matches(pattern, subject) for pattern in spec.subjects):
            return spec.msg_limit(max_payload)
    raise ValueError(f"no Fao stream stores {subject}")


def check_size(
    subject: str, body: bytes, limit: int | None = None, *, headers: Mapping[str, str] | None = None
) -> int:
    """The size of a message (body plus ``headers``) about to be published on ``subject``; raises
    ``MessageTooLarge`` when it is over ``limit`` (default: the limit of the Fao stream that stores
    ``subject``). Call it before every JetStream publish whose body is not bounded by its model."""
    size = len(body) + headers_size(headers)
    bound = max_msg_size(subject) if limit is None else limit
    if size > bound:
        raise MessageTooLarge(subject, size, bound)
    return size


def server_max_payload(js: JetStreamContext) -> int:
    """The max_payload of the server ``js`` talks to, from the INFO its connection received."""
    nc = getattr(js, "_nc", None)  # nats-py keeps the connection here (no public accessor)
    return int(getattr(nc, "max_payload", DEFAULT_MAX_PAYLOAD))


async def ensure_streams(js: JetStreamContext, max_payload: int | None = None) -> None:
    """Create every Fao stream, or bring an existing one to the current configuration (limits
    included: sized for ``max_payload``, by default the connected server's)."""
    payload = server_max_payload(js) if max_payload is None else max_payload
    for spec in STREAMS:
        config = spec.config(payload)
        try:
            await js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS_WITH_OTHER_CONFIG:
                raise
            await js.update_stream(spec.config(payload))
            log.info("stream_updated", stream=spec.name, max_msg_size=config.max_msg_size)


async def _config_bucket(js: JetStreamContext, bucket: str) -> KeyValue:
    """A bucket of config values (5 revisions kept, file storage), created when missing."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=5, storage=StorageType.FILE))


async def monitors_bucket(js: JetStreamContext) -> KeyValue:
    """The monitor definitions the probers follow (written by ``fao apply``)."""
    return await _config_bucket(js, subjects.MONITORS_BUCKET)


async def maintenance_bucket(js: JetStreamContext) -> KeyValue:
    """The maintenance windows the correlator follows (written by ``fao apply`` and ``fao maintenance``)."""
    return await _config_bucket(js, subjects.MAINTENANCE_BUCKET)


# Default time-to-live of a prober's heartbeat key in the probers bucket (``probers_bucket``).
PROBERS_TTL = 6.0
KV_DUPLICATE_WINDOW_MAX = 120.0


async def probers_bucket(js: JetStreamContext, ttl: float | None = None) -> KeyValue:
    """The live probers (``fao.prober.membership``): a key expires ``ttl`` seconds after its last
    heartbeat and the server then writes a delete marker, so watchers see the prober go. Created
    when missing (``ttl`` or ``PROBERS_TTL``); given ``ttl``, an existing bucket is brought to it
    (every prober of a deployment uses the same ``FAO_PROBER_TTL``)."""
    want = PROBERS_TTL if ttl is None else ttl
    try:
        kv = await js.key_value(subjects.PROBERS_BUCKET)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=subjects.PROBERS_BUCKET,
            history=1,
            ttl=want,
            limit_marker_ttl=want,
            storage=StorageType.FILE,
        )
        try:
            return await js.create_key_value(config)
        except BadRequestError:  # created at the same moment by another process
            kv = await js.key_value(subjects.PROBERS_BUCKET)
    if ttl is not None:
        status = await kv.status()
        old = status.ttl
        if old is None or abs(old - ttl) > 0.001:
            stream = status.stream_info.config
            stream.max_age = ttl
            stream.duplicate_window = min(ttl, KV_DUPLICATE_WINDOW_MAX)
            stream.subject_delete_marker_ttl = ttl
            await js.update_stream(stream)
            log.info("probers_bucket_ttl_changed", old=old, new=ttl)
    return kv


async def state_bucket(js: JetStreamContext) -> KeyValue:
    """The correlator's monitor states (one key per monitor, the newest value only, file storage),
    created when missing. Written by the correlator alone; read by the gateway and ``fao doctor``."""
    try:
        return await js.key_value(subjects.STATE_BUCKET)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=subjects.STATE_BUCKET, history=1, storage=StorageType.FILE)
        try:
            return await js.create_key_value(config)
        except BadRequestError:  # created at the same moment by another process
            return await js.key_value(subjects.STATE_BUCKET)


# The screenshots of failing browser checks: kept 35 days (past a month's report), 1 GiB at most
# (the oldest go first); a screenshot is at most SCREENSHOT_MAX_BYTES (the prober refuses larger).
SCREENSHOTS_MAX_AGE = 35 * DAY
SCREENSHOTS_MAX_BYTES = 1024 * 1024 * KIB
SCREENSHOT_MAX_BYTES = 512 * KIB


async def screenshots_bucket(js: JetStreamContext, *, create: bool = True) -> ObjectStore:
    """The ``fao-screenshots`` object store, created when missing (``create``; else
    ``BucketNotFoundError``). Old objects are removed first when it is full."""
    try:
        return await js.object_store(subjects.SCREENSHOTS_BUCKET)
    except BucketNotFoundError:
        if not create:
            raise
    config = ObjectStoreConfig(
        bucket=subjects.SCREENSHOTS_BUCKET,
        description="screenshots of failing browser checks",
        ttl=SCREENSHOTS_MAX_AGE,
        max_bytes=SCREENSHOTS_MAX_BYTES,
        storage=StorageType.FILE,
    )
    try:
        store = await js.create_object_store(subjects.SCREENSHOTS_BUCKET, config)
    except BadRequestError:  # created at the same moment by another process
        return await js.object_store(subjects.SCREENSHOTS_BUCKET)
    info = await js.stream_info(f"OBJ_{subjects.SCREENSHOTS_BUCKET}")
    if info.config.discard != DiscardPolicy.OLD:  # nats-py makes object stores refuse new objects when full
        info.config.discard = DiscardPolicy.OLD
        await js.update_stream(info.config)
    return store


CONFIG_BUCKETS = (subjects.MONITORS_BUCKET, subjects.MAINTENANCE_BUCKET)
# Every bucket a service may find missing at start-up and wait for (``verify_bus``).
BUCKETS = (*CONFIG_BUCKETS, subjects.PROBERS_BUCKET)
# How often a service that may not create the bus checks again whether it exists.
VERIFY_INTERVAL = 2.0


async def missing_bus(js: JetStreamContext) -> list[str]:
    """Names of the Fao streams and buckets that do not exist (read-only checks)."""
    missing: list[str] = []
    for name in [spec.name for spec in STREAMS] + [f"KV_{bucket}" for bucket in BUCKETS]:
        try:
            await js.stream_info(name)
        except NotFoundError:
            missing.append(name)
    return missing


async def verify_bus(js: JetStreamContext) -> None:
    """Wait until every Fao stream and config bucket exists, for a service that may not create them
    (``FAO_NATS_MANAGE_STREAMS=false``, a least-privilege NATS user): logs ``bus_not_ready`` with
    what is missing (once, then every 30 s) and checks again every ``VERIFY_INTERVAL`` seconds."""
    last_log = -1e9
    loop = asyncio.get_running_loop()
    while True:
        try:
            missing = await missing_bus(js)
            reason = "missing: " + ", ".join(missing)
        except Exception as exc:  # not answered (NATS away, or the user may not even read them)
            missing, reason = ["?"], f"cannot check: {type(exc).__name__}: {exc}"
        if not missing:
            return
        if loop.time() - last_log >= 30.0:
            last_log = loop.time()
            log.warning(
                "bus_not_ready",
                detail=reason,
                hint="the NATS admin creates streams and buckets (fao apply); waiting",
            )
        await asyncio.sleep(VERIFY_INTERVAL)


async def ensure_bus(js: JetStreamContext) -> None:
    await ensure_streams(js)
    await monitors_bucket(js)
    await maintenance_bucket(js)
    await probers_bucket(js)
    await state_bucket(js)
    await screenshots_bucket(js)


# How long one key listing waits for the next key before giving up (a server that stopped answering).
KEYS_TIMEOUT = 10.0
DELETED_OPERATIONS = frozenset({"DEL", "PURGE"})


async def kv_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """The live keys of ``bucket``, sorted. Not ``KeyValue.keys()``: nats-py's watcher can signal
    "no more keys" before delivering the ones it already received (its consumer has nothing
    pending while the messages still wait in the subscription), so it now and then answers "no
    keys" for a full bucket. Here the last message of every key is read until the server says none
    is pending, and keys whose last operation is a delete or purge are left out."""
    return sorted(await _kv_last(js, bucket, headers_only=True))


async def kv_values(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """The live keys of ``bucket`` with their values, read as ``kv_keys`` reads the keys (one
    ordered consumer: thousands of keys in one pass, not one request per key)."""
    return await _kv_last(js, bucket, headers_only=False)


async def _kv_last(js: JetStreamContext, bucket: str, *, headers_only: bool) -> dict[str, bytes]:
    stream = f"KV_{bucket}"
    if (await js.stream_info(stream)).state.messages == 0:
        return {}
    prefix = f"$KV.{bucket}."
    sub = await js.subscribe(
        f"{prefix}>",
        stream=stream,  # not looked up by subject: STREAM.NAMES is not a service user's permission
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        headers_only=headers_only,
    )
    found: dict[str, bytes] = {}
    try:
        while True:
            msg = await sub.next_msg(timeout=KEYS_TIMEOUT)
            operation = (msg.headers or {}).get("KV-Operation")
            if operation not in DELETED_OPERATIONS:
                found[msg.subject.removeprefix(prefix)] = msg.data
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()
