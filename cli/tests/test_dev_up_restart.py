"""`fao dev up` keeps its services running: one that dies is restarted (with a line naming it and how
it ended), the others are left alone, and Ctrl-C still stops everything."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from cli.tests.test_dev_up import SERVICE_PORTS, dev_up, free_port_block, healthy, site_inventory

from fao.cli.dev import DevConfig, describe_exit, restart_delay
from fao.runtime.launch import free_port


def test_restart_delay_doubles_up_to_its_cap_and_exits_are_described() -> None:
    cfg = DevConfig(data_dir=Path("."), config_dir=Path("."), restart_backoff=1.0, restart_max=30.0)
    assert [restart_delay(cfg, n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert describe_exit(1) == "code 1"
    assert describe_exit(-9) == "signal SIGKILL"


def started_pids(lines: list[str], label: str) -> list[int]:
    pattern = re.compile(rf"^fao: started {re.escape(label)} \(pid (\d+)\)")
    return [int(m.group(1)) for line in lines if (m := pattern.match(line))]


def test_dev_up_restarts_a_service_that_dies(tmp_path: Path) -> None:
    first_http = free_port_block(SERVICE_PORTS)  # below the ephemeral range (a full run saw one taken)
    config = site_inventory(tmp_path, first_http)
    with dev_up(tmp_path, config, first_http, "--no-demo", "--demo-port", str(free_port())) as fao:
        fao.wait_for(lambda: healthy(first_http), 60, "the correlator's /healthz")
        fao.wait_for(lambda: healthy(first_http + 1), 30, "the notifier's /healthz")
        [pid] = started_pids(fao.lines, "correlator")
        notifier = started_pids(fao.lines, "notifier")
        os.kill(pid, signal.SIGKILL)
        fao.wait_for(
            fao.logged("fao: correlator exited (signal SIGKILL)", "restarting in 1s"), 10, "the exit line"
        )
        fao.wait_for(lambda: len(started_pids(fao.lines, "correlator")) == 2, 10, "a new correlator")
        assert started_pids(fao.lines, "correlator")[1] != pid
        fao.wait_for(lambda: healthy(first_http), 60, "the restarted correlator's /healthz")
        assert started_pids(fao.lines, "notifier") == notifier, "the other services are left alone"
        assert "stopping everything" not in fao.output
