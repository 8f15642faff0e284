"""Flap detection, after Nagios: the weighted percentage of state changes over the last 21 results.

Each of the (up to) 20 changes between consecutive results is weighted from 0.8 (oldest) to 1.2
(newest), so recent instability counts more; the sum is divided by 20, so a short history reads
low (never flapping on two results). A monitor starts flapping at ``START`` % and stops below
``STOP`` % (hysteresis: it does not toggle around one threshold). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fao.correlator.state_machine import FLAP_HISTORY

START: Final = 30.0
STOP: Final = 15.0
_CHANGES: Final = FLAP_HISTORY - 1


def percent_state_change(history: Sequence[bool]) -> float:
    """0 (stable) to 100 (every result differs from the one before)."""
    recent = list(history)[-FLAP_HISTORY:]
    offset = _CHANGES - (len(recent) - 1)  # a short history is the newest part of a full one
    total = 0.0
    for i in range(1, len(recent)):
        if recent[i] != recent[i - 1]:
            position = offset + i - 1  # 0 = oldest possible change, 19 = newest
            total += 0.8 + 0.4 * position / (_CHANGES - 1)
    return 100.0 * total / _CHANGES


def still_flapping(was_flapping: bool, percent: float) -> bool:
    """Hysteresis: start at START, keep flapping until below STOP."""
    return percent >= STOP if was_flapping else percent >= START
