"""``fao check <monitor>``: run one monitor's check now, from this machine, and show the outcome.

Reads the monitor from the config folder (the same files ``fao apply`` takes), so an operator can
try a new or changed monitor before applying it. Nothing is published or stored.
"""

from __future__ import annotations

from pathlib import Path

from fao.prober.checks.contract import Outcome
from fao.prober.checks.registry import CheckerRegistry
from fao.schemas import Monitor
from fao.schemas.loader import load_inventory


class UnknownMonitorError(ValueError):
    """The monitor id is not in the config folder."""


def find_monitor(directory: Path, monitor_id: str) -> Monitor:
    monitors = {m.id: m for m in load_inventory(directory).monitors}
    if monitor_id not in monitors:
        known = ", ".join(sorted(monitors)) or "none"
        raise UnknownMonitorError(f"no monitor {monitor_id!r} in {directory} (known: {known})")
    return monitors[monitor_id]


async def run_check(monitor: Monitor) -> Outcome:
    registry = CheckerRegistry.builtin()
    try:
        return await registry.run(monitor.check, monitor.timeout)
    finally:
        await registry.aclose()


def describe(monitor: Monitor, outcome: Outcome) -> str:
    verdict = "UP" if outcome.ok else f"DOWN ({outcome.error_kind})"
    status = f" HTTP {outcome.http_status}" if outcome.http_status is not None else ""
    detail = f": {outcome.detail}" if outcome.detail else ""
    return f"{monitor.id} [{monitor.check.type}] {verdict}{status} in {outcome.latency_ms:.1f} ms{detail}"
