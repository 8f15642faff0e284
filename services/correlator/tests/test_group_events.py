"""The events of one message's group commit: monitors joining an incident make one ``noted``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from fao.correlator.app import _add_coalesced
from fao.correlator.policy import JOINED_NAMED, joined_text
from fao.schemas import Incident, IncidentEvent, IncidentEventType

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _incident(incident_id: str, monitors: list[str]) -> Incident:
    return Incident(
        id=incident_id, system_id=f"sys-{incident_id}", monitor_ids=monitors, status="open", title="down",
        started_at=T0,
    )  # fmt: skip


def _event(
    type_: IncidentEventType,
    incident: Incident,
    joined: Sequence[str] = (),
    seconds: int = 0,
) -> IncidentEvent:
    return IncidentEvent(
        event_id=uuid4(), type=type_, at=T0 + timedelta(seconds=seconds), incident=incident,
        joined=list(joined), text=joined_text(list(joined)) if joined else "",
    )  # fmt: skip


def test_joins_of_one_incident_in_a_row_are_one_event_with_the_first_id_and_the_latest_incident() -> None:
    events: list[IncidentEvent] = []
    opened = _event("opened", _incident("a", ["m1"]))
    first = _event("noted", _incident("a", ["m1", "m2"]), ["m2"], 1)
    second = _event("noted", _incident("a", ["m1", "m2", "m3", "m4"]), ["m3", "m4"], 2)
    for event in (opened, first, second):
        _add_coalesced(events, event)
    assert [e.type for e in events] == ["opened", "noted"]
    merged = events[1]
    assert (merged.event_id, merged.at) == (first.event_id, first.at)
    assert merged.joined == ["m2", "m3", "m4"]
    assert merged.incident.monitor_ids == ["m1", "m2", "m3", "m4"]
    assert merged.text == "monitors joined: m2, m3, m4"


def test_other_incidents_between_do_not_stop_the_join_but_another_event_of_it_does() -> None:
    events: list[IncidentEvent] = []
    a1 = _event("noted", _incident("a", ["m1", "m2"]), ["m2"])
    b = _event("opened", _incident("b", ["x1"]))
    a2 = _event("noted", _incident("a", ["m1", "m2", "m3"]), ["m3"], 1)
    flapping = _event("flapping", _incident("a", ["m1", "m2", "m3"]), seconds=2)
    a3 = _event("noted", _incident("a", ["m1", "m2", "m3", "m4"]), ["m4"], 3)
    for event in (a1, b, a2, flapping, a3):
        _add_coalesced(events, event)
    assert [(e.incident.id, e.type, e.joined) for e in events] == [
        ("a", "noted", ["m2", "m3"]),
        ("b", "opened", []),
        ("a", "flapping", []),
        ("a", "noted", ["m4"]),
    ]


def test_a_note_by_a_person_is_never_merged() -> None:
    events: list[IncidentEvent] = []
    joined = _event("noted", _incident("a", ["m1", "m2"]), ["m2"])
    note = _event("noted", _incident("a", ["m1", "m2"]), seconds=1).model_copy(update={"text": "on it"})
    later = _event("noted", _incident("a", ["m1", "m2", "m3"]), ["m3"], 2)
    for event in (joined, note, later):
        _add_coalesced(events, event)
    assert [(e.text, e.joined) for e in events] == [
        ("monitors joined: m2", ["m2"]),
        ("on it", []),
        ("monitors joined: m3", ["m3"]),
    ]


def test_a_long_join_names_some_monitors_and_counts_the_rest() -> None:
    monitors = [f"m{i:03d}" for i in range(JOINED_NAMED + 5)]
    text = joined_text(monitors)
    assert text.startswith("monitors joined: m000, m001")
    assert text.endswith(f"m{JOINED_NAMED - 1:03d} and 5 more")
