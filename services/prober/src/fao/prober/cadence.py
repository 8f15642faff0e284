"""When a monitor's scheduled runs fall: a grid fixed by the monitor's id, the same on every prober.

A monitor with interval ``i`` has grid points at the wall-clock times ``u·i + k·i`` (``u`` in
[0, 1) a hash of its id, counted from the Unix epoch), and the run of grid point ``k`` is moved by a
jitter that is a hash of (monitor id, ``k``), within the scheduler's bound. Load is spread as with
random offsets and random jitter — ids hash uniformly — but every prober of a zone plans the same
run times for a monitor. That is what makes a handover safe without coordination: when the
monitors move between probers (``fao.runtime.rendezvous``), the new owner takes the first run still ahead
of it and the old one has run those before, so a monitor is checked once per interval, never twice
and never skipped, except for a run due in the milliseconds the two take to see the change. Wall
clocks of a zone's probers agree to NTP accuracy; the grid tolerates far more than that.

The scheduler works in monotonic time: ``SharedCadence(epoch)`` takes the monotonic time of the
Unix epoch (``monotonic() - time()``), read once at start.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol


class Cadence(Protocol):
    def phase(self, monitor_id: str, interval: float) -> float:
        """A grid point of the monitor, in the scheduler's time; the others are ``± k·interval``."""
        ...

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        """How far, within ``[-bound, bound]``, the run planned at grid point ``slot`` is moved."""
        ...


def unit_hash(*parts: str) -> float:
    """A number in [0, 1) from ``parts``: stable across processes, hosts and releases."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@functools.lru_cache(maxsize=1 << 16)
def _phase_unit(monitor_id: str) -> float:
    return unit_hash(monitor_id)


class SharedCadence:
    """The grid every prober computes alike (see the module docstring)."""

    def __init__(self, epoch: float) -> None:
        self._epoch = epoch

    def phase(self, monitor_id: str, interval: float) -> float:
        return self._epoch + _phase_unit(monitor_id) * interval

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        k = round((slot - self._epoch) / interval - _phase_unit(monitor_id))
        return (2.0 * unit_hash(monitor_id, str(k)) - 1.0) * bound
