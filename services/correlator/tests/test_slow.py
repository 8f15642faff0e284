"""Slow, not down: an http monitor's ``max_latency`` opens one minor ``slow`` incident when X of the
last Y successful checks are slower than ``max_ms``, and resolves it when they no longer are."""

from __future__ import annotations

from services.correlator.tests.policy_sim import Sim, monitor, system

from fao.correlator.policy import on_result, on_tick
from fao.schemas import CheckResult, ErrorKind, MaintenanceWindow

HTTP = {"type": "http", "url": "http://127.0.0.1:1/", "max_latency": {"max_ms": 800, "slow": 3, "of": 5}}


def slow_sim(**kw: object) -> Sim:
    return Sim([system("portal")], [monitor("portal-home", "portal", check=HTTP, **kw)])


def check(sim: Sim, latency_ms: float, ok: bool = True) -> None:
    result = CheckResult(
        monitor_id="portal-home",
        system_id="portal",
        zone="default",
        prober_id="p1",
        started_at=sim.now,
        ok=ok,
        latency_ms=latency_ms,
        error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT,
        detail="" if ok else "timed out",
    )
    sim._apply(on_result(sim.world(), result, sim.now))
    sim.step(5)


def test_three_slow_of_five_open_one_minor_slow_incident() -> None:
    sim = slow_sim()
    for latency in (100, 900, 120, 950):
        check(sim, latency)
    assert sim.sent() == [], "two slow of the last five: not yet"
    check(sim, 1200)
    assert sim.sent() == [("opened", "portal", "slow")]
    incident = sim.open_incident("portal")
    assert incident is None, "a slow monitor is not a system outage"
    slow = next(i for i in sim.incidents.open() if i.kind == "slow")
    assert slow.severity == "minor"
    assert slow.title == "portal-home: slower than 800 ms"
    assert slow.cause == "3 of the last 5 checks slower than 800 ms (latest 1200 ms)"
    check(sim, 1300)
    assert len(sim.sent()) == 1, "still slow: nothing more"


def test_back_to_normal_speed_resolves_it() -> None:
    sim = slow_sim()
    for latency in (900, 900, 900):
        check(sim, latency)
    assert sim.sent() == [("opened", "portal", "slow")]
    check(sim, 100)
    assert len(sim.sent()) == 1, "three of the last five still slow"
    check(sim, 100)
    check(sim, 100)
    assert sim.sent() == [("opened", "portal", "slow"), ("resolved", "portal", "slow")]


def test_failures_are_outages_not_slowness() -> None:
    sim = slow_sim()
    for _ in range(3):
        check(sim, 5000, ok=False)
    assert sim.sent() == [("opened", "portal", "outage")]
    assert not sim.states["portal-home"].slow


def test_monitor_without_a_latency_rule_is_never_slow() -> None:
    sim = Sim(
        [system("portal")], [monitor("portal-home", "portal", check={"type": "http", "url": "http://h/"})]
    )
    for _ in range(6):
        check(sim, 60_000)
    assert sim.sent() == []


def test_slow_inside_maintenance_is_muted_and_a_removed_monitor_resolves() -> None:
    window = MaintenanceWindow.model_validate(
        {
            "id": "patch",
            "reason": "patching",
            "systems": ["portal"],
            "start": "2026-01-01",
            "end": "2030-01-01",
        }
    )
    sim = slow_sim()
    sim.windows = [window]
    for _ in range(3):
        check(sim, 900)
    assert sim.sent() == []
    muted = next(i for i in sim.incidents.open() if i.kind == "slow")
    assert muted.muted == "maintenance"
    sim.monitors = []
    sim._apply(on_tick(sim.world(), sim.now, [], []))
    assert not [i for i in sim.incidents.open() if i.kind == "slow"]
