"""The incident policy, rule by rule, with an injected clock (``policy_sim.Sim``)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from services.correlator.tests.policy_sim import T0, Sim, monitor, system

from fao.schemas import PLATFORM_SYSTEM, Command, MaintenanceWindow, WeeklyRecurrence, command_event_id


def single(**kw: object) -> Sim:
    return Sim([system("web")], [monitor("web-home", "web", **kw)])


# -- one incident per problem, quiet period --------------------------------------------------------


def test_confirmed_failure_opens_one_alerted_incident_and_recovery_waits_for_the_quiet_period() -> None:
    sim = single()
    sim.ok("web-home")
    sim.fail("web-home", 2)
    assert sim.sent() == [("opened", "web", "outage")]
    incident = sim.incident_of("web")
    assert incident.started_at == T0 + timedelta(seconds=1), "starts at the first failure"
    recovered_at = sim.now
    sim.ok("web-home", 5)
    assert sim.open_incident("web") is not None, "not resolved inside the quiet period"
    sim.run_ticks(30)
    assert sim.sent() == [("opened", "web", "outage"), ("resolved", "web", "outage")]
    resolved = sim.incident_of("web")
    assert resolved.resolved_at == recovered_at, "downtime ends at the first success"
    assert resolved.resolved_by == "fao:auto"


def test_a_failure_being_confirmed_when_the_quiet_period_ends_keeps_the_incident_open() -> None:
    """Found black-box: the quiet period ran out just after a first (not yet confirmed) failure,
    the tick resolved the incident and the confirming failure opened a new one — "fixed" then
    "problem" 80 ms apart, and a dependant unmuted on the way, for a problem that never ended."""
    sim = Sim([system("core"), system("portal", depends_on=["core"])],
              [monitor("core-ping", "core"), monitor("portal-home", "portal")])  # fmt: skip
    sim.ok("core-ping")
    sim.ok("portal-home")
    sim.fail("core-ping", 2)
    sim.fail("portal-home", 2)
    parent = sim.incident_of("core")
    assert sim.open_incident("portal") is not None
    sim.ok("core-ping", 1)
    sim.run_ticks(27)  # two seconds of the 30 s quiet period left
    sim.fail("core-ping", 1)  # a failure that will be confirmed: the problem never ended
    sim.run_ticks(2)
    assert sim.open_incident("core") == sim.incidents.by_id[parent.id], "never resolved"
    sim.fail("core-ping", 1)
    sim.run_ticks(5)
    assert [i.id for i in sim.incidents.by_id.values() if i.system_id == "core"] == [parent.id]
    assert sim.sent() == [("opened", "core", "outage")], "no fixed/problem pair, no unmuted dependant"
    assert sim.types("core")[-1] == "reopened"


def test_an_unconfirmed_failure_at_the_end_of_the_quiet_period_only_waits_for_the_next_result() -> None:
    sim = single()
    sim.ok("web-home")
    sim.fail("web-home", 2)
    sim.ok("web-home", 1)
    sim.run_ticks(27)
    sim.fail("web-home", 1)
    sim.run_ticks(10)
    assert sim.open_incident("web") is not None, "waits: the failure may be confirmed"
    sim.ok("web-home", 1)  # it was not: a blip
    sim.tick()
    assert sim.sent() == [("opened", "web", "outage"), ("resolved", "web", "outage")]


def test_dependants_flapping_with_their_parent_are_not_released_as_still_down_when_it_is_stable() -> None:
    """Found black-box: a core switch flapping for two minutes, everything behind it with it. Its
    dependants' monitors stay marked flapping for a while after it is stable (their flap history
    still holds its changes): they were unmuted as "still down" although up — one message per
    team. They wait for their own history instead, and resolve silently when it settles."""
    sim = Sim([system("core"), system("portal", depends_on=["core"], team="web")],
              [monitor("core-ping", "core", confirm={"failures": 3, "of": 3}),
               monitor("portal-home", "portal", confirm={"failures": 3, "of": 3}, interval=10)])  # fmt: skip
    sim.ok("core-ping")
    sim.ok("portal-home")
    for _ in range(12):  # blips: never confirmed, flapping
        sim.result("core-ping", False)
        sim.result("portal-home", False)
        sim.step(1)
        for _ in range(2):
            sim.result("core-ping", True)
            sim.result("portal-home", True)
            sim.step(1)
    assert sim.sent() == [("opened", "core", "flapping")]
    assert sim.open_incident("portal") is not None, "held or muted under the core's incident"
    for second in range(240):  # both stable; the portal is checked less often
        sim.result("core-ping", True)
        if second % 10 == 0:
            sim.result("portal-home", True)
        sim.step(1)
        sim.tick()
        assert ("unmuted", "portal", "flapping") not in sim.sent(), f"after {second} s of stability"
    assert sim.open_incident("portal") is None, "resolved once its own history settled"
    assert sim.sent() == [("opened", "core", "flapping"), ("resolved", "core", "flapping")]


def test_a_dependant_that_keeps_flapping_after_its_parent_is_stable_is_its_own_problem() -> None:
    sim = Sim([system("core"), system("portal", depends_on=["core"], team="web")],
              [monitor("core-ping", "core", confirm={"failures": 3, "of": 3}),
               monitor("portal-home", "portal", confirm={"failures": 3, "of": 3})])  # fmt: skip
    sim.ok("core-ping")
    sim.ok("portal-home")
    for second in range(36 + 300):  # together for 36 s, then the portal goes on alone
        blip = second % 3 == 0
        if second < 36 or not blip:
            sim.result("core-ping", not blip)
        sim.result("portal-home", not blip)
        sim.step(1)
        sim.tick()
    assert sim.sent() == [
        ("opened", "core", "flapping"), ("resolved", "core", "flapping"), ("unmuted", "portal", "flapping"),
    ]  # fmt: skip


def test_a_single_failure_is_not_an_incident() -> None:
    sim = single()
    sim.ok("web-home")
    sim.fail("web-home", 1)
    sim.ok("web-home", 3)
    sim.run_ticks(40)
    assert sim.events == []


def test_failure_inside_the_quiet_period_continues_the_incident_and_twice_makes_it_flapping() -> None:
    sim = single()
    sim.ok("web-home")
    for _ in range(4):
        sim.fail("web-home", 2, every=2)
        sim.ok("web-home", 3, every=2)
    assert sim.types("web")[:2] == ["opened", "reopened"]
    assert "flapping" in sim.types("web")
    incident = sim.incident_of("web")
    assert incident.kind == "flapping"
    assert incident.reopened >= 1, "once flapping, the monitor stays a problem: no more reopens"
    sim.ok("web-home", 60, every=1)
    sim.run_ticks(40)
    assert sim.sent() == [("opened", "web", "outage"), ("resolved", "web", "flapping")]


def test_blips_that_never_confirm_still_alert_as_flapping_once() -> None:
    """Down half the time in short blips (a failure, then a success at the re-check): X-of-Y
    never confirms, flap detection does; one "unstable" message and one "stable again"."""
    sim = single(confirm={"failures": 3, "of": 3})
    for _ in range(12):
        sim.fail("web-home", 1, every=1)
        sim.ok("web-home", 1, every=2)
    assert sim.sent() == [("opened", "web", "flapping")]
    sim.ok("web-home", 40, every=1)
    sim.run_ticks(40)
    assert sim.sent() == [("opened", "web", "flapping"), ("resolved", "web", "flapping")]


def test_second_monitor_of_the_system_joins_the_open_incident() -> None:
    sim = Sim([system("web")], [monitor("a", "web"), monitor("b", "web")])
    sim.ok("a")
    sim.ok("b")
    sim.fail("a", 2)
    sim.fail("b", 2)
    assert sim.types("web") == ["opened", "noted"]
    assert sim.incident_of("web").monitor_ids == ["a", "b"]
    sim.ok("a", 2)
    sim.run_ticks(40)
    assert sim.open_incident("web") is not None, "b is still down"
    sim.ok("b")
    sim.run_ticks(31)
    assert sim.types("web") == ["opened", "noted", "resolved"]


# -- dependencies ----------------------------------------------------------------------------------


def tree(children: int = 3) -> Sim:
    systems = [system("core", team="noc")] + [system(f"app{i}", depends_on=["core"]) for i in range(children)]
    monitors = [monitor("core-ping", "core")] + [monitor(f"app{i}-web", f"app{i}") for i in range(children)]
    return Sim(systems, monitors)


def all_ok(sim: Sim) -> None:
    for m in sim.monitors:
        sim.result(m.id, True)
    sim.step(1)


def test_children_failing_first_are_held_then_suppressed_under_the_parent() -> None:
    sim = tree(3)
    all_ok(sim)
    for i in range(3):
        sim.result(f"app{i}-web", False)
    sim.step(1)
    for i in range(3):
        sim.result(f"app{i}-web", False)
    sim.tick()
    assert sim.events == [], "held: the parent has no result newer than the children's failures"
    sim.fail("core-ping", 2)
    assert sim.sent() == [("opened", "core", "outage")]
    parent = sim.incident_of("core")
    assert parent.dependants == ["app0", "app1", "app2"]
    opened = next(e for e in sim.events if e.type == "opened")
    assert opened.incident.dependants == ["app0", "app1", "app2"], "the parent's message counts them"
    for i in range(3):
        child = sim.incident_of(f"app{i}")
        assert child.parent_incident_id == parent.id
        assert child.muted == "dependency"
    assert sim.types().count("suppressed") == 3

    all_ok(sim)
    sim.run_ticks(31)
    assert sim.sent() == [("opened", "core", "outage"), ("resolved", "core", "outage")]
    assert all(sim.incident_of(f"app{i}").status == "resolved" for i in range(3))


def test_child_failing_after_the_parent_is_down_joins_it_silently() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("core-ping", 2)
    sim.fail("app0-web", 2)
    assert sim.sent() == [("opened", "core", "outage")]
    assert sim.incident_of("app0").muted == "dependency"


def test_child_still_down_after_the_parent_recovers_gets_its_own_message() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("app0-web", 2)
    sim.fail("core-ping", 2)
    sim.ok("core-ping", 35)
    sim.tick()
    sim.fail("app0-web", 1)
    sim.run_ticks(20)
    assert sim.sent() == [
        ("opened", "core", "outage"),
        ("resolved", "core", "outage"),
        ("unmuted", "app0", "outage"),
    ]
    unmuted = next(e for e in sim.events if e.type == "unmuted")
    assert unmuted.text == "parent_resolved"


def test_hold_ends_at_once_when_the_parent_is_seen_fine() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("app0-web", 2)
    assert sim.events == []
    sim.ok("core-ping")
    assert sim.sent() == [("opened", "app0", "outage")]


def test_hold_is_bounded_by_the_parents_confirmation_time() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("app0-web", 2)
    bound = monitor("core-ping", "core").confirm_time
    sim.run_ticks(bound - 3)
    assert sim.events == [], "still waiting for the parent"
    sim.run_ticks(3)
    assert sim.sent() == [("opened", "app0", "outage")]


def test_a_parent_that_failed_a_moment_ago_is_fine_only_after_a_clean_run() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("core-ping", 1)  # one failure, disproved by the next check
    sim.ok("core-ping", 1)
    sim.fail("app0-web", 2)
    sim.ok("core-ping", 1)
    assert sim.events == [], "passing once after a failure: not yet known fine"
    sim.ok("core-ping", 1)
    assert sim.sent() == [("opened", "app0", "outage")], (
        "three in a row: fine, the dependant is its own problem"
    )


def test_dependants_failing_while_their_parent_flaps_between_its_checks_do_not_alert() -> None:
    """Found black-box: a core switch down 3 s in every 11 passed most of its checks; each
    dependant whose own checks hit a down phase was confirmed and alerted its team, and was fixed
    seconds later — 19 messages. A parent that failed within its last few checks is not known fine."""
    sim = tree(2)
    all_ok(sim)
    for _ in range(4):
        sim.fail("core-ping", 1)
        sim.ok("core-ping", 1)
        sim.fail("app0-web", 2)
        sim.fail("app1-web", 2)
        sim.ok("core-ping", 1)
        sim.ok("app0-web", 1)
        sim.ok("app1-web", 1)
        sim.run_ticks(2)
    sim.run_ticks(60)
    assert [s for s in sim.sent() if s[1] != "core"] == [], "no dependant alerted on its own"


def test_a_dependant_still_down_alerts_when_a_blipping_parent_s_bound_runs_out() -> None:
    sim = tree(1)
    all_ok(sim)
    sim.fail("core-ping", 1)
    sim.ok("core-ping", 1)
    sim.fail("app0-web", 2)
    bound = monitor("core-ping", "core").confirm_time
    sim.run_ticks(bound - 3)
    assert sim.events == [], "waiting for the parent"
    sim.run_ticks(3)
    assert sim.sent() == [("opened", "app0", "outage")], "never held past the parent's confirmation time"


def test_grandchildren_attach_to_the_topmost_incident() -> None:
    sim = Sim(
        [system("core"), system("db", depends_on=["core"]), system("app", depends_on=["db"])],
        [monitor("core-ping", "core"), monitor("db-tcp", "db"), monitor("app-web", "app")],
    )
    all_ok(sim)
    sim.fail("app-web", 2)
    sim.fail("db-tcp", 2)
    sim.fail("core-ping", 2)
    assert sim.sent() == [("opened", "core", "outage")]
    root = sim.incident_of("core")
    assert sorted(root.dependants) == ["app", "db"]
    assert sim.incident_of("app").parent_incident_id == root.id


# -- maintenance -----------------------------------------------------------------------------------


def window(start_min: float, end_min: float, **kw: object) -> MaintenanceWindow:
    spec: dict[str, object] = {
        "id": "mw1",
        "reason": "patching",
        "systems": ["web"],
        "start": T0 + timedelta(minutes=start_min),
        "end": T0 + timedelta(minutes=end_min),
    }
    spec.update(kw)
    return MaintenanceWindow.model_validate(spec)


def test_outage_inside_a_window_sends_nothing_and_records_the_time() -> None:
    sim = single()
    sim.windows.append(window(0, 10))
    sim.ok("web-home")
    sim.fail("web-home", 5)
    sim.ok("web-home", 2)
    sim.run_ticks(31)
    assert sim.sent() == []
    incident = sim.incident_of("web")
    assert incident.status == "resolved"
    assert incident.muted == "maintenance"
    assert len(incident.maintenance) == 1
    span = incident.maintenance[0]
    assert span.start == incident.started_at
    assert span.end == incident.resolved_at


def test_outage_outlasting_the_window_alerts_once_when_it_ends() -> None:
    sim = single()
    sim.windows.append(window(0, 1))
    sim.ok("web-home")
    sim.fail("web-home", 5)
    assert sim.sent() == []
    sim.run_ticks(60)
    sim.fail("web-home", 1)
    assert sim.sent() == [("unmuted", "web", "outage")]
    assert sim.events[-1].type == "unmuted" or "unmuted" in sim.types()
    assert next(e for e in sim.events if e.type == "unmuted").text == "maintenance_ended"
    sim.ok("web-home", 2)
    sim.run_ticks(31)
    assert sim.sent() == [("unmuted", "web", "outage"), ("resolved", "web", "outage")]
    incident = sim.incident_of("web")
    assert incident.maintenance[0].end is not None
    assert incident.maintenance[0].end <= T0 + timedelta(minutes=1, seconds=1)


def test_window_ended_early_alerts_at_the_end() -> None:
    sim = single()
    mw = window(0, 60)
    sim.windows.append(mw)
    sim.ok("web-home")
    sim.fail("web-home", 3)
    sim.windows[0] = mw.model_copy(update={"ended_at": sim.now})
    sim.tick()
    assert sim.sent() == [("unmuted", "web", "outage")]


def test_weekly_window_by_team_and_an_ancestor_in_maintenance_mute_dependants() -> None:
    sim = tree(1)
    weekly = MaintenanceWindow(
        id="sunday",
        reason="network work",
        teams=["noc"],
        weekly=WeeklyRecurrence(days=["mon"], at="09:30", duration=7200),
    )  # T0 is Monday 10:00 Bangkok
    sim.windows.append(weekly)
    all_ok(sim)
    sim.fail("app0-web", 3)
    assert sim.sent() == []
    assert sim.incident_of("app0").muted == "maintenance"


# -- zones -----------------------------------------------------------------------------------------


def two_zones() -> Sim:
    return Sim([system("web")], [monitor("web-home", "web", zones=["dc1", "dr"])])


def test_one_zone_failing_is_a_zone_problem_not_an_outage() -> None:
    sim = two_zones()
    sim.ok("web-home", zone="dc1")
    sim.ok("web-home", zone="dr")
    sim.fail("web-home", 3, zone="dr")
    sim.ok("web-home", zone="dc1")
    assert sim.open_incident("web") is None
    assert sim.sent() == [("opened", PLATFORM_SYSTEM, "zone")]
    zone_incident = sim.incident_of(PLATFORM_SYSTEM)
    assert zone_incident.zones == ["dr"]
    assert zone_incident.severity == "minor"
    sim.ok("web-home", 2, zone="dr")
    sim.run_ticks(31)
    assert sim.sent()[-1] == ("resolved", PLATFORM_SYSTEM, "zone")


def test_a_zone_problems_title_counts_the_monitors_failing_now() -> None:
    """Found black-box: "zone dr: 1 monitor(s) fail only from this zone" while 31 did."""
    sim = Sim([system("web")], [monitor(m, "web", zones=["dc1", "dr"]) for m in ("web-home", "web-api")])
    for m in ("web-home", "web-api"):
        sim.ok(m, zone="dc1")
        sim.ok(m, zone="dr")
    sim.fail("web-home", 3, zone="dr")
    sim.ok("web-home", zone="dc1")
    assert sim.incident_of(PLATFORM_SYSTEM).title == "zone dr: 1 monitor(s) fail only from this zone"
    sim.fail("web-api", 3, zone="dr")
    sim.ok("web-api", zone="dc1")
    zone_incident = sim.incident_of(PLATFORM_SYSTEM)
    assert zone_incident.monitor_ids == ["web-api", "web-home"]
    assert zone_incident.title == "zone dr: 2 monitor(s) fail only from this zone"


def test_both_zones_failing_is_one_outage() -> None:
    sim = two_zones()
    sim.ok("web-home", zone="dc1")
    sim.ok("web-home", zone="dr")
    for _ in range(2):
        sim.result("web-home", False, zone="dc1")
        sim.result("web-home", False, zone="dr")
        sim.step(1)
    assert [s for s in sim.sent() if s[1] == "web"] == [("opened", "web", "outage")]


def test_a_silent_zone_is_unknown_not_down_and_one_prober_silent_incident() -> None:
    sim = two_zones()
    sim.watch_silence = True
    sim.ok("web-home", zone="dc1")
    sim.ok("web-home", zone="dr")
    for _ in range(40):  # dr falls silent; dc1 keeps reporting
        sim.result("web-home", True, zone="dc1")
        sim.step(1)
        sim.tick()
    assert sim.sent() == [("opened", PLATFORM_SYSTEM, "prober_silent")]
    assert sim.incident_of(PLATFORM_SYSTEM).zones == ["dr"]
    sim.ok("web-home", zone="dr")
    sim.tick()
    assert sim.sent()[-1] == ("resolved", PLATFORM_SYSTEM, "prober_silent")


# -- results that must not count -------------------------------------------------------------------


def test_duplicate_future_and_unknown_results_are_ignored() -> None:
    sim = single()
    sim.result("web-home", False)
    assert sim.result("web-home", False, at=sim.now).ignored == "duplicate"
    assert sim.result("web-home", False, at=sim.now + timedelta(days=3650)).ignored == "from_the_future"
    assert sim.result("web-home", True, zone="elsewhere").ignored == "zone_not_listed"
    sim.step(1)
    assert sim.result("web-home", True).ignored is None, "a future-dated result did not block real ones"


def test_idempotence_marks_of_old_probers_are_pruned() -> None:
    sim = single()
    sim.result("web-home", True, prober="old")
    sim.step(700)
    sim.result("web-home", True, prober="new")
    assert list(sim.states["web-home"].applied) == ["default/new"]


# -- commands --------------------------------------------------------------------------------------


def cmd(action: str, incident_id: str | None = None, **kw: object) -> Command:
    spec: dict[str, object] = {
        "command_id": uuid4(),
        "action": action,
        "actor": "somchai",
        "source": "line",
        "at": T0,
        "incident_id": incident_id,
    }
    spec.update(kw)
    return Command.model_validate(spec)


def opened_sim() -> tuple[Sim, str]:
    sim = single()
    sim.ok("web-home")
    sim.fail("web-home", 2)
    return sim, sim.incident_of("web").id


def test_acknowledge_then_resolve_by_hand() -> None:
    sim, incident_id = opened_sim()
    ack = cmd("ack", incident_id)
    out = sim.command(ack)
    assert [e.event_id for e in out.events] == [command_event_id(ack.command_id)]
    assert sim.incident_of("web").acknowledged_by == "line:somchai"
    assert sim.command(cmd("ack", incident_id)).rejections[0].reason.startswith("already acknowledged")
    out = sim.command(cmd("resolve", incident_id, text="restarted"))
    resolved = sim.incident_of("web")
    assert resolved.status == "resolved"
    assert resolved.resolved_by == "line:somchai"
    assert out.events[0].text == "restarted"
    sim.fail("web-home", 5)
    sim.run_ticks(5)
    assert sim.open_incident("web") is None, "still failing, silenced until it recovers"
    sim.ok("web-home", 2)
    sim.fail("web-home", 2)
    assert sim.open_incident("web") is not None, "a new failure after recovery is a new incident"


@pytest.mark.parametrize(
    ("action", "reason"),
    [("ack", "already resolved"), ("resolve", "already resolved")],
)
def test_commands_on_a_resolved_incident_are_rejected(action: str, reason: str) -> None:
    sim, incident_id = opened_sim()
    sim.command(cmd("resolve", incident_id))
    out = sim.command(cmd(action, incident_id))
    assert reason in out.rejections[0].reason
    assert out.events == []


def test_unknown_incident_is_rejected_and_notes_are_always_recorded() -> None:
    sim, incident_id = opened_sim()
    assert "unknown incident" in sim.command(cmd("ack", "inc-nope")).rejections[0].reason
    sim.command(cmd("resolve", incident_id))
    out = sim.command(cmd("note", incident_id, text="root cause: disk full"))
    assert out.events[0].type == "noted"
    assert out.events[0].text == "root cause: disk full"


def test_manual_report_opens_an_incident_or_joins_the_open_one() -> None:
    sim = single()
    out = sim.command(cmd("open_manual", text="เว็บเข้าไม่ได้", system_id="web"))
    assert out.events[0].type == "opened"
    assert out.events[0].incident.kind == "manual"
    sim2, incident_id = opened_sim()
    out = sim2.command(cmd("open_manual", text="เว็บช้ามาก", system_id="web"))
    assert out.events[0].type == "noted"
    assert out.events[0].incident.id == incident_id
    assert (
        "unknown system" in sim2.command(cmd("open_manual", text="x", system_id="nope")).rejections[0].reason
    )


def test_an_outage_seen_by_one_zone_first_is_not_a_zone_problem() -> None:
    """Zones check at different moments: dc1 confirms before dr has checked again. Without a
    success from dr newer than dc1's first failure, that is no zone problem, and when dr fails
    too it is one outage."""
    sim = two_zones()
    sim.ok("web-home", zone="dc1")
    sim.ok("web-home", zone="dr")
    sim.fail("web-home", 3, zone="dc1")
    assert sim.events == []
    sim.fail("web-home", 2, zone="dr")
    assert sim.sent() == [("opened", "web", "outage")]


def test_working_through_a_backlog_does_not_end_a_hold_whose_evidence_is_still_in_it() -> None:
    """After a failover the standby handles results seconds late: the hold is measured on the
    results' clock, so the parent's failures later in the backlog still suppress the child."""
    sim = tree(1)
    all_ok(sim)
    failed_at = sim.now
    sim.fail("app0-web", 2)
    sim.evidence_at = sim.now
    sim.step(60)  # wall clock far past the parent's confirmation time
    sim.tick()
    assert sim.events == [], "still held: the backlog has not reached the parent's checks"
    sim.result("core-ping", False, at=failed_at + timedelta(seconds=2))
    sim.result("core-ping", False, at=failed_at + timedelta(seconds=3))
    assert sim.sent() == [("opened", "core", "outage")]
    assert sim.incident_of("app0").muted == "dependency"


def test_a_monitor_removed_while_down_closes_its_incident_with_a_note() -> None:
    sim = single()
    sim.ok("web-home")
    sim.fail("web-home", 2)
    sim.monitors.clear()
    sim.tick()
    incident = sim.incident_of("web")
    assert incident.status == "resolved"
    resolved = [e for e in sim.events if e.type == "resolved"]
    assert resolved[0].text == "monitors removed from the configuration: web-home"


def test_resolving_a_parent_by_hand_closes_its_suppressed_dependants_without_a_storm() -> None:
    sim = tree(3)
    all_ok(sim)
    sim.fail("core-ping", 2)
    for i in range(3):
        sim.fail(f"app{i}-web", 2)
    parent = sim.incident_of("core")
    sim.command(cmd("resolve", parent.id))
    for _ in range(3):  # everything still fails
        for m in sim.monitors:
            sim.result(m.id, False)
        sim.step(5)
        sim.tick()
    sim.run_ticks(60)
    assert sim.sent() == [("opened", "core", "outage"), ("resolved", "core", "outage")]
    assert all(sim.incident_of(f"app{i}").status == "resolved" for i in range(3))
