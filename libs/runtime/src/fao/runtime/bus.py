"""JetStream streams and KV buckets, created idempotently at start-up by every service.

Creating is safe to repeat: an existing stream with a different configuration is updated to this
one (so a new release can change retention), never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from fao.schemas import subjects

log = structlog.get_logger()

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age: float
    duplicate_window: float

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            storage=StorageType.FILE,
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
            discard=DiscardPolicy.OLD,
        )


STREAMS = [
    # Raw results are only needed until the correlator has folded them into monitor state.
    StreamSpec(subjects.RESULTS_STREAM, [subjects.RESULTS_SUBJECTS], max_age=HOUR, duplicate_window=120.0),
    # The public incident history: long retention so the reporter can rebuild its read model.
    StreamSpec(
        subjects.INCIDENTS_STREAM, [subjects.INCIDENTS_SUBJECTS], max_age=400 * DAY, duplicate_window=DAY
    ),
    # Operator commands and the correlator's answers to them (rejections); the correlator reads
    # only the commands, senders (gateway, CLI) watch the outcomes.
    StreamSpec(
        subjects.COMMANDS_STREAM,
        [subjects.COMMANDS_SUBJECTS, subjects.COMMAND_OUTCOMES_SUBJECTS],
        max_age=30 * DAY,
        duplicate_window=DAY,
    ),
    StreamSpec(
        subjects.DEAD_LETTER_STREAM, [subjects.DEAD_LETTER_SUBJECTS], max_age=90 * DAY, duplicate_window=120.0
    ),
]

STREAM_EXISTS_WITH_OTHER_CONFIG = 10058


async def ensure_streams(js: JetStreamContext) -> None:
    """Create every Fao stream, or bring an existing one to the current configuration."""
    for spec in STREAMS:
        try:
            await js.add_stream(spec.config())
        except BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS_WITH_OTHER_CONFIG:
                raise
            await js.update_stream(spec.config())
            log.info("stream_updated", stream=spec.name)


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


async def ensure_bus(js: JetStreamContext) -> None:
    await ensure_streams(js)
    await monitors_bucket(js)
    await maintenance_bucket(js)
