"""Pure parts of the web face: a system's state from its incidents, maintenance and monitors;
the latency sparkline; the catalogues; safe redirects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fao.gateway.i18n import catalogue
from fao.gateway.sparkline import sparkline
from fao.gateway.views import BadCursorError, decode_cursor, encode_cursor, system_state
from fao.gateway.web import safe_next
from fao.schemas import Incident, System

SYSTEM = System(id="web", name="Web", team="apps")


def _incident(**changes: Any) -> Incident:
    values: dict[str, Any] = {
        "id": "i1", "system_id": "web", "status": "open", "title": "x",
        "started_at": datetime(2026, 11, 1, tzinfo=UTC), **changes,
    }  # fmt: skip
    return Incident.model_validate(values)


@pytest.mark.parametrize(
    ("incidents", "monitors", "maintenance", "expected"),
    [
        ([], ["up", "up"], False, ("up", None)),
        ([], ["up", "down"], False, ("down", None)),
        ([], [], False, ("unknown", None)),
        ([], ["unknown"], False, ("unknown", None)),
        ([], ["up"], True, ("maintenance", None)),
        ([_incident()], ["down"], True, ("down", "i1")),
        ([_incident(kind="zone")], ["up"], False, ("degraded", "i1")),
        ([_incident(kind="zone"), _incident(id="i2")], ["down"], False, ("down", "i2")),
        ([_incident(muted="maintenance")], ["down"], True, ("maintenance", "i1")),
        ([_incident(status="resolved")], ["up"], False, ("up", None)),
        ([_incident(system_id="other")], ["up"], False, ("up", None)),
    ],
)
def test_a_systems_state_comes_from_its_worst_open_incident_then_maintenance_then_monitors(
    incidents: list[Incident], monitors: list[str], maintenance: bool, expected: tuple[str, str | None]
) -> None:
    assert system_state(SYSTEM, incidents, monitors, maintenance) == expected


def test_the_sparkline_draws_latencies_and_marks_failures_without_text() -> None:
    svg = str(sparkline([(10.0, True), (30.0, False), (20.0, True)]))
    assert svg.startswith("<svg")
    assert svg.count("<circle") == 1
    assert "<text" not in svg
    assert str(sparkline([])) == ""
    assert "<polyline" in str(sparkline([(0.0, True)]))


def test_the_catalogues_have_the_same_words() -> None:
    assert set(catalogue("th")) == set(catalogue("en"))
    assert catalogue("th")["state_down"] == "ขัดข้อง"


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    assert decode_cursor(encode_cursor("2026-11-01T00:00:00+00:00", "inc-1"), 2) == [
        "2026-11-01T00:00:00+00:00", "inc-1",
    ]  # fmt: skip
    for foreign in ("!!!", encode_cursor("a", "b", "c")):
        with pytest.raises(BadCursorError):
            decode_cursor(foreign, 2)


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/incidents", "/incidents"), (None, "/"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
     ("/\\evil", "/")],
)  # fmt: skip
def test_redirects_stay_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
