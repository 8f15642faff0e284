"""The per-monitor state machine: X-of-Y confirmation, recovery, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fao.correlator.state_machine import Decision, MonitorState, decide
from fao.schemas import CheckResult, ConfirmPolicy, ErrorKind

T0 = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)
TWO_OF_THREE = ConfirmPolicy(failures=2, of=3)


def result(i: int, ok: bool, *, zone: str = "default", prober: str = "p1", detail: str = "") -> CheckResult:
    return CheckResult(
        monitor_id="web",
        system_id="portal",
        zone=zone,
        prober_id=prober,
        started_at=T0 + timedelta(seconds=10 * i),
        ok=ok,
        latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.HTTP_STATUS,
        detail=detail or ("" if ok else "HTTP 503"),
    )


def run(
    outcomes: str, policy: ConfirmPolicy = TWO_OF_THREE, recover_after: int = 1
) -> tuple[MonitorState, list[Decision]]:
    """Feed a string of outcomes ('o' ok, 'x' failure) and collect every decision."""
    state = MonitorState("web")
    decisions = []
    for i, ch in enumerate(outcomes):
        d = decide(state, result(i, ch == "o"), policy, recover_after)
        decisions.append(d)
        state = d.state
    return state, decisions


def kinds(decisions: list[Decision]) -> list[str]:
    return [d.transition.kind for d in decisions if d.transition]


def test_first_success_makes_unknown_monitor_up_without_transition() -> None:
    state, decisions = run("o")
    assert state.status == "up"
    assert kinds(decisions) == []


def test_single_failure_is_only_suspect() -> None:
    state, decisions = run("ox")
    assert state.status == "suspect"
    assert kinds(decisions) == []


def test_two_of_three_failures_confirm_down_once() -> None:
    state, decisions = run("oxox")
    assert state.status == "down"
    assert kinds(decisions) == ["down"]
    assert decisions[3].transition is not None
    assert decisions[3].transition.since == T0 + timedelta(seconds=10), "outage starts at first failure"


def test_isolated_failures_outside_window_never_confirm() -> None:
    _, decisions = run("oxooxooxoo")
    assert kinds(decisions) == []


def test_further_failures_while_down_do_not_repeat_transition() -> None:
    _, decisions = run("xxxxxxx")
    assert kinds(decisions) == ["down"]


def test_recovery_closes_at_first_success() -> None:
    state, decisions = run("oxxo")
    assert kinds(decisions) == ["down", "up"]
    up = decisions[3].transition
    assert up is not None
    assert up.since == T0 + timedelta(seconds=10)
    assert up.at == T0 + timedelta(seconds=30)
    assert state.status == "up"
    assert state.down_since is None


def test_recover_after_needs_consecutive_successes() -> None:
    _, decisions = run("xxoxoo", recover_after=2)
    assert kinds(decisions) == ["down", "up"]
    assert decisions[2].state.status == "recovering"
    assert decisions[3].state.status == "down", "a failure during recovery falls back to down"
    up = decisions[5].transition
    assert up is not None
    assert up.at == T0 + timedelta(seconds=40), "downtime ends at the first success of the confirming streak"


def test_one_of_one_goes_down_on_first_failure() -> None:
    _, decisions = run("x", policy=ConfirmPolicy(failures=1, of=1))
    assert kinds(decisions) == ["down"]


def test_flapping_produces_one_transition_per_confirmed_change() -> None:
    _, decisions = run("xxoxxoxxo")
    assert kinds(decisions) == ["down", "up", "down", "up", "down", "up"]


def test_cause_is_latest_failure_detail() -> None:
    state = MonitorState("web")
    state = decide(state, result(0, False, detail="timeout"), TWO_OF_THREE).state
    d = decide(state, result(1, False, detail="HTTP 502"), TWO_OF_THREE)
    assert d.transition is not None
    assert d.transition.cause == "HTTP 502"


def test_redelivered_result_is_ignored() -> None:
    state = MonitorState("web")
    state = decide(state, result(0, False), TWO_OF_THREE).state
    again = decide(state, result(0, False), TWO_OF_THREE)
    assert not again.applied
    assert again.state == state
    assert again.transition is None


def test_older_result_from_same_prober_is_ignored_but_other_zone_counts() -> None:
    state = MonitorState("web")
    state = decide(state, result(5, False, zone="bkk"), TWO_OF_THREE).state
    assert not decide(state, result(4, False, zone="bkk"), TWO_OF_THREE).applied
    other = decide(state, result(4, False, zone="cnx"), TWO_OF_THREE)
    assert other.applied
    assert other.transition is not None
    assert other.transition.kind == "down"


@pytest.mark.parametrize(
    ("failures", "of", "outcomes", "expected"),
    [
        (3, 5, "xxoox", ["down"]),
        (3, 5, "xooxo", []),
        (2, 2, "xox", []),
        (2, 2, "xx", ["down"]),
    ],
)
def test_x_of_y_windows(failures: int, of: int, outcomes: str, expected: list[str]) -> None:
    _, decisions = run(outcomes, policy=ConfirmPolicy(failures=failures, of=of))
    assert kinds(decisions) == expected


def test_state_round_trips_through_store_document() -> None:
    from fao.correlator.store import StoredState, state_from_doc, state_to_doc

    state, _ = run("oxx")
    stored = StoredState(state, system_id="portal", open_incident_id="inc-1")
    assert state_from_doc(state_to_doc(stored)) == stored


def test_settled_only_when_up_with_clean_window() -> None:
    from fao.correlator.state_machine import is_settled

    assert not is_settled(MonitorState("web"))
    assert is_settled(run("ooo")[0])
    assert not is_settled(run("ox")[0]), "suspect"
    assert not is_settled(run("oxo")[0]), "up again, but a failure is still in the window"
    assert is_settled(run("oxooo")[0])
    assert not is_settled(run("xx")[0]), "down"
    assert is_settled(run("xxo")[0]), "recovered: the window restarts with the success"
