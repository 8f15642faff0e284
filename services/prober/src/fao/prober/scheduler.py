"""When each monitor runs next: one heap for all the monitors of this prober. Pure and synchronous.

The scheduler never reads a clock: every method that needs the time takes it as a parameter
(monotonic seconds), and where runs fall comes from an injected ``Cadence`` (``cadence.py``: a grid
and a jitter fixed by the monitor's id, the same on every prober). The runner owns the clock and
the event loop; tests drive this class with plain numbers.

Heap items are ``(due_at, seq, monitor_id)``. Re-arming or removing a monitor does not search the
heap: the entry remembers the ``seq`` of its live item and older items are skipped when they surface
(the heap is rebuilt if stale items pile up).

Cadence
-------
* Scheduled runs sit on the monitor's grid (``phase + k * interval``); each run is moved by the
  cadence's jitter, at most ``min(jitter_fraction * interval, max_jitter)`` (10 %, capped at 1 s by
  default) either way. The grid does not drift, so the mean period is exactly ``interval``.
* A monitor new to this scheduler (a config apply, a restart, or a monitor handed over from another
  prober) first runs at the first run of its grid that is not in the past: its usual slot, never at
  once, so two probers handing a monitor over never both run the same slot. Ids hash uniformly, so
  a config apply or a restart still spreads the load over one interval.
* A run that finishes late (overload) skips the grid points it missed instead of catching up in a
  burst.
* Re-checks (``attempt="recheck"``) follow a result without jitter, ``recheck_interval`` after it
  finished (never later than ``interval``):
    - after a failure that follows a success (or is the monitor's first result), until
      ``confirm.of`` consecutive failures are in, or a success arrives;
    - after the first success that follows failures, until ``recover_after`` consecutive successes
      are in, or a failure arrives (which starts a new confirm window).
  Once a window is decided, the monitor goes back to its grid: the first run at least
  ``recheck_interval`` (at most ``interval``) after that result.
* A monitor never has two runs in flight: ``pop_due`` marks it running and only ``record`` (or
  ``release``) re-arms it.

Config changes
--------------
``upsert`` of a known monitor keeps its schedule when the interval is unchanged; a new interval moves
the next scheduled run to the new grid, no sooner than one new interval after the last run (a
monitor that never ran takes the new grid's first run ahead); a pending re-check keeps its time. A
monitor updated while its check runs is re-armed with the new settings when the result is
recorded. ``remove`` while running leaves a tombstone: the result is ignored and nothing is
re-armed, unless the monitor was added back in the meantime, in which case the in-flight run counts
for it (still never two runs at once). ``upsert`` of a disabled monitor removes it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from fao.prober.cadence import Cadence
from fao.schemas import Attempt, Monitor

_STREAK_CAP = 1_000_000
_COMPACT_SLACK = 64
# Grid points computed two ways (from the phase, or from the previous slot) may differ by float
# rounding; this much earlier still counts as the same point. Far below any interval.
_SLOT_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Due:
    """A run the runner should start now."""

    monitor: Monitor
    attempt: Attempt
    due_at: float


@dataclass(slots=True)
class _Entry:
    monitor: Monitor
    due_at: float = 0.0
    anchor: float = 0.0  # grid point of the next (or running) scheduled run; due_at when a re-check
    attempt: Attempt = "scheduled"
    heap_seq: int = -1  # seq of the live heap item; -1 when not in the heap
    running: bool = False
    removed: bool = False  # removed while running: drop when the run ends
    last_ok: bool | None = None
    streak: int = 0  # consecutive results equal to last_ok
    recovering: bool = False  # the current success streak follows failures and is < recover_after


class Scheduler:
    """Decides when each monitor runs. Times are monotonic seconds supplied by the caller."""

    def __init__(self, cadence: Cadence, *, jitter_fraction: float = 0.1, max_jitter: float = 1.0) -> None:
        if not 0.0 <= jitter_fraction < 0.5:
            raise ValueError("jitter_fraction must be in [0, 0.5)")
        if max_jitter < 0.0:
            raise ValueError("max_jitter must not be negative")
        self._cadence = cadence
        self._jitter_fraction = jitter_fraction
        self._max_jitter = max_jitter
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._removed_running = 0

    def __len__(self) -> int:
        """Monitors scheduled (a monitor removed while its check runs no longer counts)."""
        return len(self._entries) - self._removed_running

    def __contains__(self, monitor_id: object) -> bool:
        entry = self._entries.get(monitor_id) if isinstance(monitor_id, str) else None
        return entry is not None and not entry.removed

    def jitter_bound(self, interval: float) -> float:
        """Largest jitter, either way, applied to a scheduled run of a monitor with ``interval``."""
        return min(self._jitter_fraction * interval, self._max_jitter)

    def is_running(self, monitor_id: str) -> bool:
        entry = self._entries.get(monitor_id)
        return entry is not None and entry.running

    def due_at(self, monitor_id: str) -> float | None:
        """When the monitor runs next; ``None`` when unknown or running."""
        entry = self._entries.get(monitor_id)
        if entry is None or entry.heap_seq < 0:
            return None
        return entry.due_at

    def upsert(self, monitor: Monitor, now: float) -> None:
        """Add a monitor or apply a changed definition (see "Config changes" above)."""
        if not monitor.enabled:
            self.remove(monitor.id)
            return
        entry = self._entries.get(monitor.id)
        if entry is None:
            entry = self._entries[monitor.id] = _Entry(monitor)
            self._arm(entry, *self._plan(monitor, now), "scheduled")
            return
        old = entry.monitor
        entry.monitor = monitor
        if entry.removed:
            entry.removed = False
            self._removed_running -= 1
        if entry.running or entry.attempt == "recheck" or monitor.interval == old.interval:
            return
        earliest = -math.inf if entry.last_ok is None else entry.anchor - old.interval + monitor.interval
        self._arm(entry, *self._plan(monitor, now, earliest), "scheduled")

    def remove(self, monitor_id: str) -> bool:
        """Stop scheduling a monitor. Returns whether it was known."""
        entry = self._entries.get(monitor_id)
        if entry is None or entry.removed:
            return False
        if entry.running:
            entry.removed = True
            self._removed_running += 1
        else:
            del self._entries[monitor_id]
            self._compact_if_needed()
        return True

    def pop_due(self, now: float, limit: int | None = None) -> list[Due]:
        """The runs due at ``now`` (earliest first, at most ``limit``), each marked running."""
        heap = self._heap
        entries = self._entries
        out: list[Due] = []
        while heap and (limit is None or len(out) < limit):
            due_at, seq, monitor_id = heap[0]
            if due_at > now:
                break
            heapq.heappop(heap)
            entry = entries.get(monitor_id)
            if entry is None or entry.heap_seq != seq:
                continue
            entry.heap_seq = -1
            entry.running = True
            out.append(Due(entry.monitor, entry.attempt, due_at))
        return out

    def next_due(self) -> float | None:
        """When the earliest armed run is due, or ``None`` when nothing is armed."""
        heap = self._heap
        entries = self._entries
        while heap:
            _, seq, monitor_id = heap[0]
            entry = entries.get(monitor_id)
            if entry is not None and entry.heap_seq == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def record(self, monitor_id: str, ok: bool, finished_at: float) -> float | None:
        """Take the result of a running check and re-arm the monitor.

        Returns when the monitor runs next, or ``None`` when the result is ignored (the monitor was
        removed, or it was not running).
        """
        entry = self._entries.get(monitor_id)
        if entry is None or not entry.running:
            return None
        entry.running = False
        if entry.removed:
            del self._entries[monitor_id]
            self._removed_running -= 1
            return None
        monitor = entry.monitor
        if self._needs_recheck(entry, ok):
            due_at = finished_at + min(monitor.recheck_interval, monitor.interval)
            self._arm(entry, due_at, due_at, "recheck")
            return due_at
        if entry.attempt == "scheduled":
            due_at, slot = self._plan(monitor, finished_at, entry.anchor + monitor.interval)
        else:
            due_at, slot = self._plan(monitor, finished_at + min(monitor.recheck_interval, monitor.interval))
        self._arm(entry, due_at, slot, "scheduled")
        return due_at

    def release(self, monitor_id: str, due_at: float) -> None:
        """A running check ended without a result (cancelled, or the runner failed): re-arm it at
        ``due_at`` with the same attempt, leaving its confirm/recovery streak untouched."""
        entry = self._entries.get(monitor_id)
        if entry is None or not entry.running:
            return
        entry.running = False
        if entry.removed:
            del self._entries[monitor_id]
            self._removed_running -= 1
            return
        self._arm(entry, due_at, entry.anchor, entry.attempt)

    def _needs_recheck(self, entry: _Entry, ok: bool) -> bool:
        """Fold one result into the streak; whether the confirm or recovery window is still open."""
        monitor = entry.monitor
        if ok:
            if entry.last_ok is False:
                entry.streak, entry.recovering = 1, True
            elif entry.last_ok is None:
                entry.streak, entry.recovering = 1, False
            else:
                entry.streak = min(entry.streak + 1, _STREAK_CAP)
            entry.last_ok = True
            if entry.recovering and entry.streak >= monitor.recover_after:
                entry.recovering = False
            return entry.recovering
        entry.streak = min(entry.streak + 1, _STREAK_CAP) if entry.last_ok is False else 1
        entry.last_ok = False
        entry.recovering = False
        return entry.streak < monitor.confirm.of

    def _plan(self, monitor: Monitor, not_before: float, earliest: float = -math.inf) -> tuple[float, float]:
        """``(due_at, slot)``: the first grid point at or after ``earliest`` whose jittered run is
        not before ``not_before``."""
        interval = monitor.interval
        bound = self.jitter_bound(interval)
        start = max(earliest, not_before - bound) - _SLOT_TOLERANCE
        slot = _slot_at_or_after(self._cadence.phase(monitor.id, interval), interval, start)
        while True:
            due_at = slot + self._jitter(monitor, slot, bound)
            if due_at >= not_before:
                return due_at, slot
            slot += interval

    def _jitter(self, monitor: Monitor, slot: float, bound: float) -> float:
        if bound <= 0.0:
            return 0.0
        return self._cadence.jitter(monitor.id, monitor.interval, slot, bound)

    def _arm(self, entry: _Entry, due_at: float, anchor: float, attempt: Attempt) -> None:
        self._seq += 1
        entry.due_at = due_at
        entry.anchor = anchor
        entry.attempt = attempt
        entry.heap_seq = self._seq
        heapq.heappush(self._heap, (due_at, self._seq, entry.monitor.id))
        self._compact_if_needed()

    def _compact_if_needed(self) -> None:
        if len(self._heap) <= 2 * len(self._entries) + _COMPACT_SLACK:
            return
        self._heap = [
            (entry.due_at, entry.heap_seq, monitor_id)
            for monitor_id, entry in self._entries.items()
            if entry.heap_seq >= 0
        ]
        heapq.heapify(self._heap)


def _slot_at_or_after(slot: float, interval: float, t: float) -> float:
    """The first grid point ``slot + k * interval`` (any integer k) not earlier than ``t``."""
    return slot + math.ceil((t - slot) / interval) * interval
