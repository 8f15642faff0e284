"""Every stream, subject, consumer and bucket name Fao uses, in one place.

Public (documented in docs/asyncapi.yaml): the incident stream ``fao.incidents.v1.<event>``.
Internal: results, commands, dead letters, and the KV buckets.
"""

from __future__ import annotations

import zlib
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

# Durable consumer names, one per reading service.
CORRELATOR_RESULTS_CONSUMER: Final = "correlator-results"
CORRELATOR_COMMANDS_CONSUMER: Final = "correlator-commands"
NOTIFIER_CONSUMER: Final = "notifier-incidents"
REPORTER_CONSUMER: Final = "reporter-incidents"


# Results are partitioned by monitor: ``result_partition`` (CRC-32 of the monitor id, mod this) is
# a subject token of every batch, so a consumer can take a share of the monitors by subject filter.
# Changing it moves monitors between partitions: a contract change (docs/contracts.md).
RESULT_PARTITIONS: Final = 16


def result_subject(monitor_id: str) -> str:
    """Subject of a single result (probers before batching; still accepted by the correlator)."""
    return f"fao.results.{monitor_id}"


def result_partition(monitor_id: str) -> int:
    """The results partition of a monitor: stable across processes, hosts and releases."""
    return zlib.crc32(monitor_id.encode()) % RESULT_PARTITIONS


def result_batch_subject(zone: str, partition: int) -> str:
    """Subject of a ``ResultBatch`` from ``zone`` whose monitors all hash to ``partition``; covered
    by ``RESULTS_SUBJECTS``; ``fao.results.batch.<zone>.>`` or ``fao.results.batch.*.<p>`` filter."""
    return f"fao.results.batch.{zone}.{partition}"


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


def command_rejected_subject() -> str:
    return "fao.command-outcomes.v1.rejected"


def maintenance_key(window_id: str) -> str:
    """KV key of a maintenance window in ``MAINTENANCE_BUCKET``."""
    return f"window.{window_id}"
