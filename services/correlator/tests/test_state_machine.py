"""Per-zone confirmation: X-of-Y, recovery, cause, history for flap detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fao.correlator.state_machine import FLAP_HISTORY, Sample, ZoneState, confirm
from fao.schemas import ConfirmPolicy

T0 = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)
TWO_OF_THREE = ConfirmPolicy(failures=2, of=3)


def sample(i: int, ok: bool, detail: str = "") -> Sample:
    return Sample(ok=ok, at=T0 + timedelta(seconds=10 * i), detail=detail or ("" if ok else "HTTP 503"))


def run(outcomes: str, policy: ConfirmPolicy = TWO_OF_THREE, recover_after: int = 1) -> list[ZoneState]:
    """Feed a string of outcomes ('o' ok, 'x' failure); every state after each."""
    state = ZoneState()
    states = []
    for i, ch in enumerate(outcomes):
        state = confirm(state, sample(i, ch == "o"), policy, recover_after)
        states.append(state)
    return states


def statuses(outcomes: str, policy: ConfirmPolicy = TWO_OF_THREE, recover_after: int = 1) -> str:
    short = {"unknown": "?", "up": "u", "suspect": "s", "down": "D", "recovering": "r"}
    return "".join(short[s.status] for s in run(outcomes, policy, recover_after))


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ("o", "u"),
        ("ox", "us"),
        ("oxox", "usuD"),  # 2 of the last 3 failed
        ("oxooxooxoo", "usuusuusuu"),  # isolated failures never confirm
        ("xxxxx", "sDDDD"),
        ("oxxo", "usDu"),
        ("xxoxoxx", "sDusuDD"),  # recovered, then the window restarts
    ],
)
def test_two_of_three(outcomes: str, expected: str) -> None:
    assert statuses(outcomes) == expected


def test_outage_starts_at_first_failure_of_the_window_and_recovery_at_first_success() -> None:
    states = run("oxxo")
    assert states[2].down_since == T0 + timedelta(seconds=10)
    assert states[3].ok_since == T0 + timedelta(seconds=30)
    assert states[3].down_since is None


def test_recover_after_needs_consecutive_successes() -> None:
    assert statuses("xxoxoo", recover_after=2) == "sDrDru"


@pytest.mark.parametrize(
    ("failures", "of", "outcomes", "expected"),
    [
        (3, 5, "xxoox", "ssuuD"),
        (3, 5, "xooxo", "suusu"),
        (2, 2, "xox", "sus"),
        (2, 2, "xx", "sD"),
        (1, 1, "x", "D"),
    ],
)
def test_x_of_y_windows(failures: int, of: int, outcomes: str, expected: str) -> None:
    assert statuses(outcomes, policy=ConfirmPolicy(failures=failures, of=of)) == expected


def test_cause_is_latest_failure_detail() -> None:
    state = confirm(ZoneState(), sample(0, False, "timeout"), TWO_OF_THREE)
    state = confirm(state, sample(1, False, "HTTP 502"), TWO_OF_THREE)
    assert state.status == "down"
    assert state.cause == "HTTP 502"


def test_history_keeps_the_last_21_outcomes_and_settled_needs_a_clean_one() -> None:
    states = run("x" + "o" * 25)
    assert len(states[-1].history) == FLAP_HISTORY
    assert states[-1].settled, "the failure left the history"
    assert not states[FLAP_HISTORY - 1].settled, "the failure is still remembered"
    assert not run("ox")[-1].settled
    assert run("ooo")[-1].settled
