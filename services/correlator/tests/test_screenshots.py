"""A failing browser check's screenshot on the incident: the monitor state remembers the newest
failing result's screenshot (until the monitor is up again), and an incident opened, joined or
reopened from that monitor carries it, in its events and as stored."""

from __future__ import annotations

from services.correlator.tests.policy_sim import Sim, monitor, system

from fao.correlator.monitor_state import MonitorState
from fao.correlator.policy import on_result, with_screenshots
from fao.schemas import CheckResult, ErrorKind, Observations
from fao.schemas.events import MAX_SCREENSHOTS
from fao.schemas.subjects import screenshot_name

BROWSER = {"type": "browser", "steps": [{"goto": "http://127.0.0.1:1/login"}, {"expect_text": "Welcome"}]}


def sim_of(*monitor_ids: str) -> Sim:
    return Sim([system("eservice")], [monitor(m, "eservice", check=BROWSER) for m in monitor_ids])


def check(sim: Sim, monitor_id: str, ok: bool, *, shot: bool = True) -> str | None:
    """One result of ``monitor_id`` now; a failure has a screenshot unless ``shot`` is false."""
    name = screenshot_name(monitor_id, sim.now, "png") if not ok and shot else None
    result = CheckResult(
        monitor_id=monitor_id,
        system_id="eservice",
        zone="default",
        prober_id="p1",
        started_at=sim.now,
        ok=ok,
        latency_ms=900.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.KEYWORD,
        detail="" if ok else "step 2 (expect_text Welcome): text 'Welcome' not found",
        observations=Observations(screenshot=name),
    )
    sim._apply(on_result(sim.world(), result, sim.now))
    sim.step(5)
    return name


def test_the_incident_opened_carries_the_newest_failures_screenshot() -> None:
    sim = sim_of("login")
    check(sim, "login", False)
    assert sim.events == [], "one failure of two: not yet"
    newest = check(sim, "login", False)
    [opened] = sim.events
    assert opened.type == "opened"
    assert opened.incident.screenshots == [newest]
    assert sim.incidents.by_id[opened.incident.id].screenshots == [newest], "stored with it"
    assert sim.states["login"].screenshot == newest


def test_a_failure_without_a_screenshot_keeps_the_one_before_and_up_forgets_it() -> None:
    sim = sim_of("login")
    first = check(sim, "login", False)
    check(sim, "login", False, shot=False)
    assert sim.events[0].incident.screenshots == [first]
    check(sim, "login", True)
    assert sim.states["login"].status == "up"
    assert sim.states["login"].screenshot is None
    assert (
        MonitorState(monitor_id="login").essential()
        != sim.states["login"].model_copy(update={"screenshot": first}).essential()
    ), "a new screenshot is worth writing the state for"


def test_a_monitor_joining_the_incident_adds_its_screenshot() -> None:
    sim = sim_of("login", "search")
    check(sim, "login", False)
    login = check(sim, "login", False)
    check(sim, "search", False)
    search = check(sim, "search", False)
    noted = sim.events[-1]
    assert noted.type == "noted"
    assert noted.joined == ["search"]
    assert noted.incident.screenshots == [login, search]


def test_failing_again_in_the_quiet_period_reopens_with_the_new_screenshot() -> None:
    sim = sim_of("login")
    check(sim, "login", False)
    first = check(sim, "login", False)
    check(sim, "login", True)
    check(sim, "login", True)
    check(sim, "login", False)
    again = check(sim, "login", False)
    reopened = sim.events[-1]
    assert reopened.type == "reopened"
    assert reopened.incident.screenshots == [first, again]


def test_monitors_without_screenshots_open_incidents_without_any() -> None:
    sim = sim_of("login")
    check(sim, "login", False, shot=False)
    check(sim, "login", False, shot=False)
    assert sim.events[0].incident.screenshots == []


def test_an_incident_keeps_the_newest_screenshots_only() -> None:
    states = [MonitorState(monitor_id=f"m{i:02}", screenshot=f"m{i:02}/x.png") for i in range(25)]
    kept = with_screenshots(["old/x.png"], states)
    assert len(kept) == MAX_SCREENSHOTS
    assert kept[0] == "m05/x.png"
    assert kept[-1] == "m24/x.png"
    assert with_screenshots(kept, states[-3:]) == kept, "a screenshot already there is not repeated"
