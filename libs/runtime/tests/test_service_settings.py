"""A service started with a setting that is not valid says which one in a line and exits 2,
without a traceback (``fao.runtime.service.run``), before it connects to anything."""

from __future__ import annotations

import os
import subprocess
import sys


def start(module: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module>`` with these ``FAO_*`` settings, to its end."""
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_setting_that_is_not_valid_is_named_in_one_line_and_exit_2() -> None:
    done = start("fao.correlator", FAO_LEASE_TTL="soon", FAO_RESULTS_GROUP="0", FAO_HTTP_PORT="-1")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        "FAO_LEASE_TTL: Input should be a valid number, unable to parse string as a number (got 'soon')"
        in lines
    )
    assert "FAO_RESULTS_GROUP: Input should be greater than or equal to 1 (got '0')" in lines


def test_a_healthz_port_out_of_range_is_a_setting_error() -> None:
    """Was: an OverflowError traceback from bind() at start, exit 1 (e.g. `fao dev up --http-port 70000`)."""
    done = start("fao.prober", FAO_HTTP_PORT="70000")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == "FAO_HTTP_PORT: Input should be less than or equal to 65535 (got '70000')"
