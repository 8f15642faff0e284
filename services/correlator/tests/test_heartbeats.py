"""Push monitors: a heartbeat later than interval + grace is a failure; a late one recovers."""

from __future__ import annotations

from datetime import timedelta

from services.correlator.tests.policy_sim import T0, Sim, monitor, system

from fao.correlator.policy import HEARTBEAT_WATCH, missed_heartbeats, on_result

TOKEN_SHA = "a" * 64


def push_sim(**kw: object) -> Sim:
    spec = {"type": "push", "token_sha256": TOKEN_SHA, "grace": 10}
    return Sim([system("batch")], [monitor("nightly", "batch", check=spec, interval=60, timeout=1, **kw)])


def watch(sim: Sim, seconds: int) -> None:
    """What the correlator's tick does each second: apply the missed heartbeats, then tick."""
    for _ in range(seconds):
        sim.step(1)
        for late in missed_heartbeats(sim.world(), sim.now):
            sim._apply(on_result(sim.world(), late, sim.now))
        sim.tick()


def heartbeat(sim: Sim) -> None:
    sim.result("nightly", True, prober="gateway")


def test_heartbeats_on_time_keep_it_up() -> None:
    sim = push_sim()
    for _ in range(5):
        heartbeat(sim)
        watch(sim, 65)
    assert missed_heartbeats(sim.world(), sim.now) == []
    assert sim.sent() == []


def test_missed_heartbeat_is_down_after_interval_plus_grace_and_confirmation() -> None:
    """confirm 1 of 1: down as soon as interval + grace passed without a heartbeat."""
    sim = push_sim(confirm={"failures": 1, "of": 1})
    heartbeat(sim)
    watch(sim, 69)
    assert sim.sent() == [], "not before interval (60 s) + grace (10 s)"
    watch(sim, 1)
    assert sim.sent() == [("opened", "batch", "outage")]
    incident = sim.incident_of("batch")
    assert incident.started_at == T0 + timedelta(seconds=70)
    assert "no heartbeat for 70s (expected every 60s + 10s grace)" in incident.cause


def test_each_missed_interval_counts_once_and_x_of_y_applies() -> None:
    sim = push_sim(confirm={"failures": 2, "of": 3})
    heartbeat(sim)
    watch(sim, 75)
    assert sim.sent() == [], "one miss of the two needed"
    state = sim.states["nightly"]
    assert state.applied[f"default/{HEARTBEAT_WATCH}"] == T0 + timedelta(seconds=70)
    watch(sim, 60)
    assert sim.sent() == [("opened", "batch", "outage")], "second missed interval confirms"
    watch(sim, 10)
    assert len([o for o in sim.outcomes if o.events]) == 1, "no more events while it stays down"


def test_a_late_heartbeat_recovers_it() -> None:
    sim = push_sim(confirm={"failures": 1, "of": 1}, quiet_period=0)
    heartbeat(sim)
    watch(sim, 80)
    assert sim.sent() == [("opened", "batch", "outage")]
    heartbeat(sim)
    watch(sim, 2)
    assert sim.sent() == [("opened", "batch", "outage"), ("resolved", "batch", "outage")]


def test_no_heartbeat_ever_counts_from_when_the_correlator_started() -> None:
    sim = push_sim(confirm={"failures": 1, "of": 1})
    watch(sim, 70)
    assert sim.sent() == [("opened", "batch", "outage")]


def test_disabled_and_other_monitors_are_not_watched() -> None:
    sim = push_sim(enabled=False)
    watch(sim, 200)
    assert sim.sent() == []
    other = Sim([system("web")], [monitor("web-home", "web")])
    other.step(500)
    assert missed_heartbeats(other.world(), other.now) == []


def test_a_push_monitor_never_makes_its_zone_look_silent() -> None:
    """No prober runs it: a long grace before the first miss is not a silent-prober incident."""
    spec = {"type": "push", "token_sha256": TOKEN_SHA, "grace": 3600}
    sim = Sim([system("batch")], [monitor("nightly", "batch", check=spec, interval=60, timeout=1)])
    sim.watch_silence = True
    heartbeat(sim)
    watch(sim, 600)
    assert [i.kind for i in sim.incidents.open()] == []
