"""Zone problems and silent probers when several correlators share the work: each shard's owner
says what it sees of each zone (``zone_views``), the platform role decides (``on_zone_views``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.correlator.tests.policy_sim import T0, Sim, monitor, system

from fao.correlator.graph import SystemGraph
from fao.correlator.policy import ZONE_QUIET, Incidents, World, ZoneView, on_zone_views, zone_views
from fao.schemas import PLATFORM_SYSTEM, IncidentEvent

ZONES = ["dc1", "dr"]


def shard(system_id: str, monitor_id: str) -> Sim:
    sim = Sim([system(system_id)], [monitor(monitor_id, system_id, zones=ZONES)], zone_decisions=False)
    sim.ok(monitor_id, zone="dc1")
    sim.ok(monitor_id, zone="dr")
    return sim


class Platform:
    def __init__(self) -> None:
        self.incidents = Incidents()
        self.events: list[IncidentEvent] = []

    def decide(
        self, now: datetime, views: dict[str, ZoneView], cleared: dict[str, datetime] | None = None
    ) -> None:
        world = World(
            monitors={}, states={}, incidents=self.incidents, graph=SystemGraph.build([]), by_system={},
            started_at=T0,
        )  # fmt: skip
        outcome = on_zone_views(world, now, views, cleared or {})
        for incident in outcome.incidents.values():
            self.incidents.put(incident)
        self.events.extend(outcome.events)


def merged(*sims: Sim) -> dict[str, ZoneView]:
    out: dict[str, ZoneView] = {}
    for sim in sims:
        for zone, view in zone_views(sim.world(), sim.now, ZONES).items():
            out[zone] = out[zone].merged(view) if zone in out else view
    return out


def test_one_zone_failing_for_monitors_of_two_shards_is_one_zone_incident() -> None:
    a, b = shard("web-a", "a-home"), shard("web-b", "b-home")
    for sim, m in ((a, "a-home"), (b, "b-home")):
        sim.fail(m, 3, zone="dr")
        sim.ok(m, zone="dc1")
    assert a.sent() == [], "a shard decides no zone problem itself"
    assert b.sent() == []
    views = merged(a, b)
    assert sorted(views["dr"].down) == ["a-home", "b-home"]
    assert views["dc1"].down == {}
    platform = Platform()
    platform.decide(a.now, views)
    [opened] = platform.events
    assert (opened.type, opened.incident.system_id, opened.incident.kind) == (
        "opened",
        PLATFORM_SYSTEM,
        "zone",
    )
    assert opened.incident.monitor_ids == ["a-home", "b-home"]
    assert opened.incident.title == "zone dr: 2 monitor(s) fail only from this zone"
    assert opened.incident.started_at == min(views["dr"].down.values())
    platform.decide(a.now, views)
    assert len(platform.events) == 1, "the same views change nothing"

    for sim, m in ((a, "a-home"), (b, "b-home")):
        sim.ok(m, 2, zone="dr")
    clear = merged(a, b)
    assert clear["dr"].down == {}
    cleared_at = a.now
    platform.decide(cleared_at + ZONE_QUIET - timedelta(seconds=1), clear, {"dr": cleared_at})
    assert len(platform.events) == 1, "still inside the quiet period"
    platform.decide(cleared_at + ZONE_QUIET, clear, {"dr": cleared_at})
    resolved = platform.events[-1]
    assert resolved.type == "resolved"
    assert resolved.incident.resolved_at == cleared_at


def test_a_second_shard_joining_a_zone_problem_grows_it() -> None:
    a, b = shard("web-a", "a-home"), shard("web-b", "b-home")
    a.fail("a-home", 3, zone="dr")
    a.ok("a-home", zone="dc1")
    platform = Platform()
    platform.decide(a.now, merged(a, b))
    b.fail("b-home", 3, zone="dr")
    b.ok("b-home", zone="dc1")
    platform.decide(b.now, merged(a, b))
    assert [e.type for e in platform.events] == ["opened", "noted"]
    assert list(platform.events[-1].joined) == ["b-home"]


def test_silent_probers_are_one_incident_from_every_shards_stale_monitors() -> None:
    a, b = shard("web-a", "a-home"), shard("web-b", "b-home")
    for sim, m in ((a, "a-home"), (b, "b-home")):
        for _ in range(40):  # dr falls silent; dc1 keeps reporting
            sim.result(m, True, zone="dc1")
            sim.step(1)
    views = merged(a, b)
    assert views["dr"].stale == ("a-home", "b-home")
    assert views["dc1"].stale == ()
    platform = Platform()
    platform.decide(a.now, views)
    [opened] = platform.events
    assert (opened.incident.kind, opened.incident.zones, opened.incident.monitor_ids) == (
        "prober_silent", ["dr"], ["a-home", "b-home"],
    )  # fmt: skip
    a.ok("a-home", zone="dr")
    b.ok("b-home", zone="dr")
    platform.decide(a.now, merged(a, b))
    assert platform.events[-1].type == "resolved"


def test_a_zone_with_an_open_incident_and_no_view_left_counts_as_clear() -> None:
    a = shard("web-a", "a-home")
    a.fail("a-home", 3, zone="dr")
    a.ok("a-home", zone="dc1")
    platform = Platform()
    platform.decide(a.now, merged(a))
    later = a.now + ZONE_QUIET
    platform.decide(later, {}, {"dr": a.now})
    assert [e.type for e in platform.events] == ["opened", "resolved"]
