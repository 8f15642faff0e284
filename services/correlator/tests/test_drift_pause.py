"""The correlator's drift check (KV definitions against MongoDB) is spaced by how long it takes."""

from __future__ import annotations

import pytest

from fao.correlator.app import DRIFT_CHECK, DRIFT_SPACING, drift_pause


@pytest.mark.parametrize(
    ("took", "pause"),
    [
        (0.05, DRIFT_CHECK),  # a small inventory: every minute
        (DRIFT_CHECK / DRIFT_SPACING, DRIFT_CHECK),
        (6.5, 6.5 * DRIFT_SPACING),  # 10,000 monitors on FerretDB: about every 5 minutes
    ],
)
def test_a_slow_check_is_spaced_so_checking_takes_a_small_share_of_the_time(
    took: float, pause: float
) -> None:
    assert drift_pause(took) == pytest.approx(pause)
    assert took / (drift_pause(took) + took) <= 1 / DRIFT_SPACING
