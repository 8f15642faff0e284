"""Time as a seam: the runner asks a ``Clock``; tests inject a fake one.

``monotonic()`` drives scheduling (seconds, arbitrary origin, never jumps); ``now()`` stamps results
(aware UTC). The scheduler itself takes time values as parameters and never reads a clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clocks: ``time.monotonic`` and ``datetime.now(UTC)``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)
