"""``fao check <monitor>``: run one monitor's check now, from this machine, and show the outcome.

Reads the monitor from the config folder (the same files ``fao apply`` takes), so an operator can
try a new or changed monitor before applying it; ``fao check --url URL`` tries an HTTP(S) check
without any config. Nothing is published or stored. The verdict line is followed by a table of
what the check observed (phase timings, certificate expiry, answers, steps).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from fao.prober.checks.contract import Outcome
from fao.prober.checks.registry import CheckerRegistry
from fao.prober.screenshots import ScreenshotKeeper
from fao.schemas import PROBER_SKIPS, Monitor, Observations
from fao.schemas.loader import load_inventory

ADHOC_ID = "adhoc"


class UnknownMonitorError(ValueError):
    """The monitor id is not in the config folder."""


class NotRunnableError(ValueError):
    """The monitor cannot be checked from here (a push monitor, an ad-hoc URL that is not valid)."""


def adhoc_monitor(url: str, timeout: float) -> Monitor:
    """A one-off HTTP(S) monitor for ``url``: any 2xx/3xx status is up."""
    try:
        return Monitor.model_validate(
            {"id": ADHOC_ID, "system": ADHOC_ID, "check": {"type": "http", "url": url},
             "timeout": timeout, "interval": max(60.0, timeout)}
        )  # fmt: skip
    except ValidationError as exc:
        reasons = "; ".join(str(error["msg"]) for error in exc.errors())
        raise NotRunnableError(f"cannot check {url!r}: {reasons}") from None


def find_monitor(directory: Path, monitor_id: str) -> Monitor:
    monitors = {m.id: m for m in load_inventory(directory).monitors}
    if monitor_id not in monitors:
        known = ", ".join(sorted(monitors)) or "none"
        raise UnknownMonitorError(f"no monitor {monitor_id!r} in {directory} (known: {known})")
    return monitors[monitor_id]


async def run_check(monitor: Monitor) -> Outcome:
    if monitor.check.type in PROBER_SKIPS:
        raise NotRunnableError(
            f"{monitor.id} is a {monitor.check.type} monitor: its job reports to the gateway (POST /push/<token>),"
            " nothing can be checked from here"
        )
    registry = CheckerRegistry.builtin()
    started_at = datetime.now(UTC)
    try:
        outcome = await registry.run(monitor.check, monitor.timeout)
    finally:
        await registry.aclose()
    # a failing browser check's screenshot: a file, as a prober without its object store keeps it
    return await ScreenshotKeeper(None).keep(monitor.id, started_at, outcome)


def describe(monitor: Monitor, outcome: Outcome) -> str:
    verdict = "UP" if outcome.ok else f"DOWN ({outcome.error_kind})"
    status = f" HTTP {outcome.http_status}" if outcome.http_status is not None else ""
    detail = f": {outcome.detail}" if outcome.detail else ""
    line = f"{monitor.id} [{monitor.check.type}] {verdict}{status} in {outcome.latency_ms:.1f} ms{detail}"
    table = observation_table(outcome.observations)
    return "\n".join([line, *table])


_LABELS: tuple[tuple[str, str], ...] = (
    ("dns_ms", "DNS"),
    ("connect_ms", "connect"),
    ("tls_ms", "TLS handshake"),
    ("first_byte_ms", "first byte"),
    ("rtt_ms", "round trip"),
    ("cert_expires_at", "certificate expires"),
    ("cert_days_left", "days left"),
    ("packets_sent", "echo requests"),
    ("packets_received", "echo replies"),
    ("banner", "banner"),
    ("answer", "answer"),
)


def _cell(name: str, value: object) -> str:
    if name.endswith("_ms") and isinstance(value, float):
        return f"{value:.1f} ms"
    if name == "cert_days_left" and isinstance(value, float):
        return f"{value:.1f}"
    if name == "cert_expires_at":
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(value)


def observation_table(observations: Observations | None) -> list[str]:
    """Two aligned columns, one line per observed value (nothing when nothing was observed)."""
    if observations is None:
        return []
    rows = [
        (label, _cell(name, value))
        for name, label in _LABELS
        if (value := getattr(observations, name)) is not None
    ]
    rows += [
        (f"step {step.name}", f"{step.ms:.1f} ms {'ok' if step.ok else 'FAILED'}")
        for step in observations.steps
    ]
    width = max((len(label) for label, _ in rows), default=0)
    return [f"  {label.ljust(width)}  {value}" for label, value in rows]
