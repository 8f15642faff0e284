"""Every stream, subject, consumer and bucket name Fao uses, in one place.

Public (documented in docs/asyncapi.yaml): the incident stream ``fao.incidents.v1.<event>``.
Internal: results, commands, dead letters, and the KV buckets.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

RESULTS_STREAM: Final = "FAO_RESULTS"
RESULTS_SUBJECTS: Final = "fao.results.>"

INCIDENTS_STREAM: Final = "FAO_INCIDENTS"
INCIDENTS_SUBJECTS: Final = "fao.incidents.v1.>"

COMMANDS_STREAM: Final = "FAO_COMMANDS"
COMMANDS_SUBJECTS: Final = "fao.commands.v1.>"

DEAD_LETTER_STREAM: Final = "FAO_DEAD_LETTERS"
DEAD_LETTER_SUBJECTS: Final = "fao.deadletter.>"

MONITORS_BUCKET: Final = "fao-monitors"
PROBERS_BUCKET: Final = "fao-probers"

# Durable consumer names, one per reading service (the correlator's: one per shard and stream,
# ``correlator_results_consumer``, and two of the platform role; all named ``correlator-…``).
CORRELATOR_CONSUMER_PREFIX: Final = "correlator-"
# The correlator's durables before results partitions were shared (1.4): read once at an upgrade,
# so the new durables start where they stopped (``fao.correlator.roles``), then deleted.
CORRELATOR_RESULTS_CONSUMER_V1: Final = "correlator-results"
CORRELATOR_COMMANDS_CONSUMER_V1: Final = "correlator-commands"
# Single results (``fao.results.<monitor>``: push heartbeats, probers before batching), taken by
# the correlator holding the platform role and sent on to their partition.
CORRELATOR_SINGLES_CONSUMER: Final = "correlator-results-single"
SINGLE_RESULTS_FILTER: Final = "fao.results.*"
# Commands as people send them; the platform role's durable (``fao.commands.v1.<action>``).
CORRELATOR_PLATFORM_COMMANDS_CONSUMER: Final = "correlator-commands-platform"
PLATFORM_COMMANDS_FILTER: Final = "fao.commands.v1.*"
NOTIFIER_CONSUMER: Final = "notifier-incidents"
REPORTER_CONSUMER: Final = "reporter-incidents"


# Results are partitioned by system: ``result_partition`` (CRC-32 of the system id, mod this) is a
# subject token of every batch, so a consumer can take a share of the systems by subject filter,
# and the results of one system's monitors travel together (one batch: one commit when a system
# goes down). Changing it moves systems between partitions: a contract change (docs/contracts.md).
RESULT_PARTITIONS: Final = 16


def result_subject(monitor_id: str) -> str:
    """Subject of a single result (probers before batching; still accepted by the correlator)."""
    return f"fao.results.{monitor_id}"


def result_partition(system_id: str) -> int:
    """The results partition of a system (of its monitors' results): stable across processes,
    hosts and releases."""
    return zlib.crc32(system_id.encode()) % RESULT_PARTITIONS


def result_batch_subject(zone: str, partition: int) -> str:
    """Subject of a ``ResultBatch`` from ``zone`` whose monitors all hash to ``partition``; covered
    by ``RESULTS_SUBJECTS``; ``fao.results.batch.<zone>.>`` or ``fao.results.batch.*.<p>`` filter."""
    return f"fao.results.batch.{zone}.{partition}"


def result_partition_filter(partition: int) -> str:
    """Every batch of one results partition, from any zone."""
    return f"fao.results.batch.*.{partition}"


def partition_mask(partitions: Iterable[int]) -> int:
    return sum(1 << p for p in set(partitions))


def correlator_results_consumer(partitions: Iterable[int]) -> str:
    """The correlator's durable for the results of a shard's partitions (``fao.correlator.roles``):
    ``correlator-results-<mask>``, the partitions as a 16-bit mask in hex."""
    return f"correlator-results-{partition_mask(partitions):04x}"


RESULT_BATCH_SUBJECTS: Final = "fao.results.batch.>"
ROUTED_COMMAND_SUBJECTS: Final = "fao.commands.v1.routed.*"


def routed_command_subject(partition: int) -> str:
    """A command the platform role sent on to the owner of its incident's partition."""
    return f"fao.commands.v1.routed.{partition}"


def correlator_commands_consumer(partitions: Iterable[int]) -> str:
    """The correlator's durable for the commands routed to a shard's partitions."""
    return f"correlator-commands-{partition_mask(partitions):04x}"


def consumer_partitions(durable: str) -> frozenset[int] | None:
    """The partitions a correlator durable of a shard reads (those of the release before 1.4:
    all of them); None for any other durable."""
    if durable in (CORRELATOR_RESULTS_CONSUMER_V1, CORRELATOR_COMMANDS_CONSUMER_V1):
        return frozenset(range(RESULT_PARTITIONS))
    for prefix in ("correlator-results-", "correlator-commands-"):
        suffix = durable.removeprefix(prefix)
        if suffix != durable and len(suffix) == 4 and all(c in "0123456789abcdef" for c in suffix):
            mask = int(suffix, 16)
            return frozenset(p for p in range(RESULT_PARTITIONS) if mask >> p & 1)
    return None


def correlator_member_key(member: str) -> str:
    """KV key (in ``LEASES_BUCKET``, whose TTL it shares) of a live correlator instance."""
    return f"lease.correlator-member.{member}"


def zone_view_key(shard: int | str) -> str:
    """KV key (in ``STATE_BUCKET``) of what one shard's owner sees of each zone (its id, the
    shard's smallest partition: ``fao.correlator.roles``)."""
    return f"zoneview.{shard}"


def prober_key(zone: str, member: str) -> str:
    """KV key of a live prober in ``PROBERS_BUCKET`` (``member``: its id with only ``[A-Za-z0-9_-]``)."""
    return f"{zone}.{member}"


def incident_subject(event_type: str) -> str:
    return f"fao.incidents.v1.{event_type}"


def command_subject(action: str) -> str:
    return f"fao.commands.v1.{action}"


def dead_letter_subject(service: str) -> str:
    return f"fao.deadletter.{service}"


def monitor_key(monitor_id: str) -> str:
    """KV key of a monitor definition in ``MONITORS_BUCKET``."""
    return f"monitor.{monitor_id}"


COMMAND_OUTCOMES_SUBJECTS: Final = "fao.command-outcomes.v1.>"
MAINTENANCE_BUCKET: Final = "fao-maintenance"
LEASES_BUCKET: Final = "fao-leases"


# The correlator's per-monitor state (``fao.correlator.monitor_state``), one key per monitor; the
# value is the state's document in BSON (the same document MongoDB held before 1.3).
STATE_BUCKET: Final = "fao-monitor-state"


def state_key(monitor_id: str) -> str:
    """KV key of a monitor's state in ``STATE_BUCKET``."""
    return f"state.{monitor_id}"


# Screenshots of failing browser checks (a JetStream Object Store): written by the prober, read by
# the gateway for the dashboard's incident page. Object names: ``screenshot_name``.
SCREENSHOTS_BUCKET: Final = "fao-screenshots"
SCREENSHOT_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}/\d{8}T\d{12}Z\.(png|jpg)$")
"""What ``screenshot_name`` makes (a reader checks a name against it before using it)."""


def screenshot_name(monitor_id: str, started_at: datetime, extension: str) -> str:
    """Object name of the screenshot of ``monitor_id``'s check started at ``started_at`` (UTC):
    ``<monitor>/<YYYYMMDDTHHMMSSffffff>Z.<png|jpg>``, the same for a check stored twice."""
    return f"{monitor_id}/{started_at.astimezone(UTC):%Y%m%dT%H%M%S%f}Z.{extension}"


def command_rejected_subject() -> str:
    return "fao.command-outcomes.v1.rejected"


def maintenance_key(window_id: str) -> str:
    """KV key of a maintenance window in ``MAINTENANCE_BUCKET``."""
    return f"window.{window_id}"
