"""The pure parts of storm digests and quota awareness: window and budget arithmetic, where a
message goes, the digest's text within LINE's limits, and the month's forecast and digest-only rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fao.notifier.digest import (
    Earlier,
    StormPolicy,
    Window,
    constraint_of,
    current_window,
    digest_claim_id,
    place,
    team_policy,
)
from fao.notifier.quota import decide_digest_only, forecast_month, month_bounds
from fao.notifier.render import MAX_ALT_TEXT_CHARS, MAX_BUBBLE_BYTES, load_catalogue, utf16_units
from fao.notifier.render_digest import DigestEntry, digest_lines, render_digest
from fao.schemas import Severity, StormSettings, Team

GROUP = "C" + "1" * 32
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
POLICY = StormPolicy(budget=3, window=60.0, digest_only_window=900.0, max_listed=10)


def entry(
    n: int,
    kind: str = "problem",
    severity: Severity = "major",
    *,
    system: str | None = None,
    at: datetime = T0,
    actor: str = "",
) -> DigestEntry:
    return DigestEntry(
        incident_id=f"inc-{n:04d}",
        kind=kind,  # type: ignore[arg-type]  # the tests pass valid kinds
        system=system or f"ระบบที่ {n}",
        severity=severity,
        at=at + timedelta(seconds=n),
        actor=actor,
    )


# -- windows and budget ---------------------------------------------------------------------


def test_a_window_opens_with_the_first_message_and_lasts_w_then_a_new_one_opens() -> None:
    """The first message opens a window of W seconds; messages before its end share it; the first
    one at or after the end opens the next window, which starts at that message."""
    first = current_window(None, GROUP, T0, POLICY, digest_only=False)
    assert (first.start, first.end, first.singles) == (T0, T0 + timedelta(seconds=60), 0)
    busy = Window(GROUP, T0, first.end, singles=3)
    assert current_window(busy, GROUP, T0 + timedelta(seconds=59.9), POLICY, False) is busy
    later = T0 + timedelta(seconds=60)
    nxt = current_window(busy, GROUP, later, POLICY, False)
    assert (nxt.start, nxt.singles) == (later, 0)
    assert nxt.digest_id == digest_claim_id(GROUP, later) == f"{GROUP}:digest:{later.isoformat()}"


def test_a_window_starts_on_a_whole_millisecond_as_stored() -> None:
    """BSON keeps milliseconds: the digest id made from the start in memory must be the one a
    restarted notifier makes from the stored start."""
    window = current_window(None, GROUP, T0 + timedelta(microseconds=585_858), POLICY, False)
    assert window.start == T0 + timedelta(microseconds=585_000)
    assert window.digest_id.endswith("03:00:00.585000+00:00")


def test_a_window_after_an_overflowing_one_continues_the_storm_with_no_budget() -> None:
    """The next window continues the storm when the previous one had digest items and ended less
    than a window length ago: every free message of it is a digest item; later, a fresh budget."""
    end = T0 + timedelta(seconds=60)
    overflowed = Window(GROUP, T0, end, singles=3, overflowed=True)
    soon = current_window(overflowed, GROUP, end + timedelta(seconds=59), POLICY, False)
    assert soon.continued
    assert place(soon, POLICY, digest_only=False, urgent=True, constraint="free") == "digest"
    assert place(soon, POLICY, digest_only=False, urgent=False, constraint="single") == "single"
    later = current_window(overflowed, GROUP, end + timedelta(seconds=60), POLICY, False)
    assert not later.continued
    quiet = Window(GROUP, T0, end, singles=3)
    assert not current_window(quiet, GROUP, end, POLICY, False).continued


def test_a_teams_storm_settings_override_the_notifiers() -> None:
    """``Team.storm`` (from the config, durations as text): its budget and window replace the
    settings' ones, what it leaves out stays, and budget 0 turns the storm limit off."""
    team = Team.model_validate(
        {"id": "noc", "name": "NOC", "line_groups": [GROUP], "storm": {"budget": 1, "window": "30s"}}
    )
    assert team_policy(POLICY, team.storm) == StormPolicy(
        budget=1, window=30.0, digest_only_window=900.0, max_listed=10
    )
    assert team_policy(POLICY, StormSettings(window=120)).budget == 3
    assert team_policy(POLICY, StormSettings(budget=0)).budget is None
    assert team_policy(POLICY, None) is POLICY


def test_a_digest_only_window_lasts_d() -> None:
    window = current_window(None, GROUP, T0, POLICY, digest_only=True)
    assert window.end - window.start == timedelta(seconds=900)
    assert window.digest_only


def test_the_first_k_messages_of_a_window_are_singles_and_the_rest_digest_items() -> None:
    """K = 3: placing eleven messages one after another gives three singles, then eight items."""
    window = current_window(None, GROUP, T0, POLICY, False)
    placements = []
    for _ in range(11):
        placed = place(window, POLICY, digest_only=False, urgent=False, constraint="free")
        placements.append(placed)
        if placed == "single":
            window = Window(window.target, window.start, window.end, singles=window.singles + 1)
    assert placements == ["single"] * 3 + ["digest"] * 8


def test_no_budget_means_no_storm_limit_and_budget_zero_digests_everything() -> None:
    full = Window(GROUP, T0, T0 + timedelta(seconds=60), singles=1000)
    unlimited = StormPolicy(budget=None)
    assert place(full, unlimited, digest_only=False, urgent=False, constraint="free") == "single"
    nothing = StormPolicy(budget=0)
    empty = Window(GROUP, T0, T0 + timedelta(seconds=60))
    assert place(empty, nothing, digest_only=False, urgent=False, constraint="free") == "digest"


def test_digest_only_batches_everything_but_a_critical_problem_within_budget() -> None:
    empty = Window(GROUP, T0, T0 + timedelta(seconds=900), digest_only=True)
    assert place(empty, POLICY, digest_only=True, urgent=False, constraint="free") == "digest"
    assert place(empty, POLICY, digest_only=True, urgent=True, constraint="free") == "single"
    full = Window(GROUP, T0, T0 + timedelta(seconds=900), digest_only=True, singles=3)
    assert place(full, POLICY, digest_only=True, urgent=True, constraint="free") == "digest"


def test_an_incidents_earlier_messages_override_the_budget() -> None:
    """A follow-up of a problem still waiting in a digest joins a digest even with budget left; a
    follow-up of a single still undelivered stays a single even with no budget left."""
    empty = Window(GROUP, T0, T0 + timedelta(seconds=60))
    full = Window(GROUP, T0, T0 + timedelta(seconds=60), singles=3)
    assert place(empty, POLICY, digest_only=False, urgent=False, constraint="digest") == "digest"
    assert place(full, POLICY, digest_only=False, urgent=False, constraint="single") == "single"
    assert place(full, POLICY, digest_only=True, urgent=False, constraint="single") == "single"


@pytest.mark.parametrize(
    ("earlier", "expected"),
    [
        ([], "free"),
        ([Earlier("sent")], "free"),
        ([Earlier("digested", digest_pending=False)], "free"),
        ([Earlier("digested", digest_pending=True)], "digest"),
        ([Earlier("pending")], "single"),
        ([Earlier("claimed")], "single"),
        ([Earlier("superseded"), Earlier("failed_permanent")], "free"),
        ([Earlier("pending"), Earlier("digested", digest_pending=True)], "digest"),
    ],
)
def test_constraint_of_earlier_messages(earlier: list[Earlier], expected: str) -> None:
    assert constraint_of(earlier) == expected


# -- the digest message ---------------------------------------------------------------------


def test_digest_lists_systems_with_thai_names_and_severities_most_severe_first() -> None:
    cat = load_catalogue("th")
    entries = [entry(1, severity="minor"), entry(2, severity="critical"), entry(3, severity="major")]
    message = render_digest(entries, cat, window=timedelta(seconds=60))
    assert message.kind == "digest"
    assert message.alt_text.startswith("🔴 3 ระบบขัดข้อง: ระบบที่ 2 (วิกฤต), ระบบที่ 3 (รุนแรง), ระบบที่ 1 (เล็กน้อย)")
    assert "footer" not in (message.bubble or {}), "a digest has no buttons"
    assert "postback" not in json.dumps(message.bubble)
    assert message.text.splitlines()[0] == "🔴 3 ระบบขัดข้อง"
    assert "1 นาที" in message.text  # the footnote says how long the digest gathered


def test_digest_lists_at_most_n_then_and_m_more() -> None:
    cat = load_catalogue("th")
    entries = [entry(n) for n in range(47)]
    message = render_digest(entries, cat, window=timedelta(seconds=60), max_listed=10)
    assert message.alt_text.startswith("🔴 47 ระบบขัดข้อง: ")
    assert message.alt_text.count("(รุนแรง)") == 10
    assert message.alt_text.endswith("และอีก 37 ระบบ")
    assert "และอีก 37 ระบบ" in message.text
    assert message.text.count("🔴 ระบบที่") == 10


def test_recovered_and_acknowledged_within_the_window_are_one_line_per_incident() -> None:
    """A problem that also ended in the window is listed once, as a problem "back to normal"; an
    end alone is listed under the recoveries; an acknowledgement names who."""
    cat = load_catalogue("th")
    entries = [
        entry(1),
        entry(1, "fixed"),
        entry(2, "fixed"),
        entry(3, "fixed"),
        entry(4, "acknowledged", actor="สมชาย"),
    ]
    lines = digest_lines(entries)
    assert [(line.incident_id, line.section, line.recovered) for line in lines] == [
        ("inc-0001", "problem", True),
        ("inc-0002", "fixed", False),
        ("inc-0003", "fixed", False),
        ("inc-0004", "acknowledged", False),
    ]
    message = render_digest(entries, cat, window=timedelta(seconds=60))
    assert "🔴 1 ระบบขัดข้อง: ระบบที่ 1 (รุนแรง) — กลับมาปกติแล้ว" in message.alt_text
    assert "✅ 2 ระบบกลับมาปกติ: ระบบที่ 2 (รุนแรง), ระบบที่ 3 (รุนแรง)" in message.alt_text
    assert "รับทราบโดย สมชาย" in message.alt_text


def test_a_recovery_storm_digest_says_how_many_came_back() -> None:
    cat = load_catalogue("th")
    message = render_digest([entry(n, "fixed") for n in range(12)], cat, window=timedelta(seconds=60))
    assert message.alt_text.startswith("✅ 12 ระบบกลับมาปกติ")
    assert message.bubble is not None
    assert message.bubble["header"]["contents"][0]["text"] == "✅ 12 ระบบกลับมาปกติ"


def test_english_digest() -> None:
    cat = load_catalogue("en")
    entries = [entry(n, system=f"System {n}", severity="critical") for n in range(7)]
    message = render_digest(entries, cat, window=timedelta(minutes=15), digest_only=True, max_listed=3)
    assert message.alt_text.startswith(
        "🔴 7 systems down: System 0 (critical), System 1 (critical), System 2 (critical)"
    )
    assert message.alt_text.endswith("and 4 more")
    assert "quota" in message.text


def test_digest_stays_within_line_limits_with_the_longest_names_and_the_most_lines() -> None:
    """2,000 incidents with 200-character names (with emoji: surrogate pairs) and the largest N: the
    altText fits 1500 characters on one line, the bubble 30 KB, the text LINE's 5000 UTF-16 units."""
    cat = load_catalogue("th")
    name = "ระบบ" + "ก" * 150 + "😀" * 46
    kinds = ["problem", "fixed", "acknowledged"]
    entries = [entry(n, kinds[n % 3], system=f"{n} {name}", actor=name) for n in range(2000)]
    message = render_digest(entries, cat, window=timedelta(seconds=60), max_listed=25)
    assert len(message.alt_text) <= MAX_ALT_TEXT_CHARS
    assert "\n" not in message.alt_text
    assert len(message.bubble_json().encode()) <= MAX_BUBBLE_BYTES
    assert utf16_units(message.text) <= 5000
    assert "และอีก" in message.alt_text


def test_a_digest_needs_an_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_digest([], load_catalogue("th"), window=timedelta(seconds=60))


# -- the month's forecast and digest-only ---------------------------------------------------


def test_month_bounds_are_bangkok_midnights() -> None:
    start, end = month_bounds(datetime(2026, 11, 30, 18, 0, tzinfo=UTC))  # 1 Dec 01:00 in Bangkok
    assert (start, end) == (
        datetime(2026, 11, 30, 17, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 17, 0, tzinfo=UTC),
    )


def test_forecast_extrapolates_the_months_rate_over_the_days_left() -> None:
    """November (30 days) in Bangkok: 100 used after 10 days → 10 a day → 300 by the end."""
    ten_days_in = datetime(2026, 10, 31, 17, 0, tzinfo=UTC) + timedelta(days=10)
    assert forecast_month(100, ten_days_in) == 300
    assert forecast_month(0, ten_days_in) == 0
    last_minute = datetime(2026, 11, 30, 16, 59, tzinfo=UTC)
    assert forecast_month(500, last_minute) == 501  # a minute left: rounded up


def test_forecast_counts_at_least_one_day_elapsed() -> None:
    """One hour into the month with 50 used: at 50 a day (not 50 an hour) → 50 + ⌈50 × 29.958⌉."""
    an_hour_in = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)
    assert forecast_month(50, an_hour_in) == 50 + 1498


@pytest.mark.parametrize(
    ("current", "used", "forecast", "exhausted", "expected"),
    [
        (False, 100, 500, False, False),  # plenty left, forecast within the limit
        (False, 901, 950, False, True),  # less than 10 % left
        (False, 100, 1001, False, True),  # the forecast exceeds the limit
        (False, 100, 500, True, True),  # LINE said the monthly limit is reached
        (True, 860, 900, False, True),  # 14 % left: not yet 15 %, stays on
        (True, 100, 960, False, True),  # forecast 96 %: not yet below 95 %, stays on
        (True, 100, 900, False, False),  # both clear by the margin: off
    ],
)
def test_digest_only_rule_with_hysteresis(
    current: bool, used: int, forecast: int, exhausted: bool, expected: bool
) -> None:
    assert (
        decide_digest_only(
            current,
            limit=1000,
            used=used,
            forecast=forecast,
            exhausted=exhausted,
            low_remaining=0.10,
            low_forecast=1.0,
        )
        is expected
    )


def test_unlimited_quota_is_never_digest_only() -> None:
    assert not decide_digest_only(
        True, limit=None, used=10**9, forecast=10**10, exhausted=True, low_remaining=0.1, low_forecast=1.0
    )
