"""Flap percentage, the system graph, quorum over zones, and the stored state's migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from services.correlator.tests.policy_sim import monitor, system

from fao.correlator.flapping import START, STOP, percent_state_change, still_flapping
from fao.correlator.graph import SystemGraph
from fao.correlator.monitor_state import MonitorState, combine
from fao.correlator.state_machine import ZoneState

T = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("history", "low", "high"),
    [
        ("o" * 21, 0, 0),
        ("x" * 21, 0, 0),
        ("ox" * 10 + "o", 99.9, 100.1),  # every result differs
        ("o" * 19 + "xo", 10, 12.1),  # one blip, newest: weighted up
        ("xo" + "o" * 19, 3.9, 4.1),  # the oldest change alone: weighted 0.8
        ("ox", 5, 6.1),  # a short history reads low
    ],
)
def test_percent_state_change(history: str, low: float, high: float) -> None:
    assert low <= percent_state_change([c == "o" for c in history]) <= high


def test_flapping_has_hysteresis() -> None:
    assert not still_flapping(False, START - 1)
    assert still_flapping(False, START)
    assert still_flapping(True, STOP)
    assert not still_flapping(True, STOP - 0.1)


def test_graph_ancestors_depth_descendants_and_cycles_do_not_hang() -> None:
    graph = SystemGraph.build(
        [system("core"), system("db", depends_on=["core"]), system("app", depends_on=["db", "core", "ghost"])]
    )
    assert graph.ancestors("app") == ("db", "core")
    assert [graph.depth(s) for s in ("core", "db", "app")] == [0, 1, 2]
    assert sorted(graph.descendants("core")) == ["app", "db"]
    looped = SystemGraph.build([system("a", depends_on=["b"]), system("b", depends_on=["a"])])
    assert looped.ancestors("a") == ("b",)
    assert sorted(looped.descendants("a")) == ["b"]


def zone(status: str, at: datetime, **kw: object) -> ZoneState:
    return ZoneState.model_validate({"status": status, "last_at": at, **kw})


@pytest.mark.parametrize(
    ("zones", "before", "after"),
    [
        ({"dc1": "down", "dr": "up"}, "up", "up"),  # one of two: not a quorum
        ({"dc1": "down", "dr": "down"}, "up", "down"),
        ({"dc1": "down", "dr": "up"}, "down", "down"),  # in between keeps the status
        ({"dc1": "up", "dr": "suspect"}, "down", "up"),
        ({"dc1": "down"}, "up", "up"),  # dr silent: unknown, never down
    ],
)
def test_quorum_of_two_zones(zones: dict[str, str], before: str, after: str) -> None:
    m = monitor("web", "web", zones=["dc1", "dr"])
    state = MonitorState(
        monitor_id="web",
        status=before,
        zones={
            name: zone(status, T, down_since=T if status == "down" else None)
            for name, status in zones.items()
        },
    )
    assert combine(state, m, T).status == after


def test_stale_zone_does_not_count() -> None:
    m = monitor("web", "web", zones=["dc1", "dr"], quorum=1)
    old = T - timedelta(hours=1)
    state = MonitorState(monitor_id="web", status="up", zones={"dc1": zone("down", old, down_since=old)})
    assert combine(state, m, T).status == "up"
    assert combine(state, m, old).status == "down"


def test_version_1_document_migrates() -> None:
    doc = {
        "_id": "web",
        "status": "down",
        "window": [{"ok": False, "at": T, "detail": "timeout"}],
        "ok_streak": 0,
        "ok_since": None,
        "down_since": T,
        "cause": "timeout",
        "applied": [{"source": "default/p1", "at": T}],
        "system_id": "portal",
        "open_incident_id": "inc-1",
        "pending": [],
    }
    state = MonitorState.from_doc(doc)
    assert state.status == "down"
    assert state.problem_since == T
    assert state.zones["default"].status == "down"
    assert state.applied == {"default/p1": T}
    assert MonitorState.from_doc(state.to_doc()) == state


def test_essential_facts_change_with_status_not_with_more_of_the_same() -> None:
    from services.correlator.tests.policy_sim import Sim

    sim = Sim([system("web")], [monitor("web-home", "web")])
    sim.ok("web-home")
    healthy = sim.states["web-home"].essential()
    sim.ok("web-home", 3)
    assert sim.states["web-home"].essential() == healthy, "more successes: nothing to write"
    sim.fail("web-home", 1)
    suspect = sim.states["web-home"].essential()
    assert suspect != healthy
    sim.fail("web-home", 1)
    down = sim.states["web-home"].essential()
    assert down != suspect
    sim.fail("web-home", 4)
    assert sim.states["web-home"].essential() == down, "more failures while down: nothing to write"
