"""Config models given the same fields share one record of them (memory per monitor in a prober),
and nothing a caller can see changes: ``model_fields_set``, ``exclude_unset`` and ``model_copy``."""

from __future__ import annotations

from typing import Any

from fao.schemas import CheckResult, HttpCheck, Monitor

MONITOR: dict[str, Any] = {
    "id": "web",
    "system": "portal",
    "check": {"type": "http", "url": "http://a.example/"},
}
RESULT: dict[str, Any] = {
    "monitor_id": "web", "system_id": "portal", "zone": "dc1", "prober_id": "p1",
    "started_at": "2026-11-29T03:00:00Z", "ok": True, "latency_ms": 1.0,
}  # fmt: skip


def test_monitors_read_from_the_same_json_shape_share_their_fields_set() -> None:
    first = Monitor.model_validate_json(Monitor.model_validate(MONITOR).model_dump_json())
    second = Monitor.model_validate_json(Monitor.model_validate(MONITOR | {"id": "api"}).model_dump_json())
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    assert first.check.__pydantic_fields_set__ is second.check.__pydantic_fields_set__


def test_what_was_given_is_still_per_instance_in_what_callers_see() -> None:
    short = Monitor.model_validate(MONITOR)
    longer = Monitor.model_validate(MONITOR | {"id": "api", "interval": 30, "tags": ["x"]})
    assert short.model_fields_set == {"id", "system", "check"}
    assert longer.model_fields_set == {"id", "system", "check", "interval", "tags"}
    assert short.model_dump(exclude_unset=True) == {
        "id": "web", "system": "portal", "check": {"type": "http", "url": HttpCheck.model_validate(MONITOR["check"]).url},
    }  # fmt: skip
    assert "interval" in longer.model_dump(exclude_unset=True)


def test_model_copy_with_an_update_leaves_the_shared_record_alone() -> None:
    a = Monitor.model_validate(MONITOR)
    b = Monitor.model_validate(MONITOR | {"id": "api"})
    c = a.model_copy(update={"interval": 30.0})
    assert "interval" in c.model_fields_set
    assert "interval" not in a.model_fields_set
    assert "interval" not in b.model_fields_set


def test_bus_messages_keep_their_own_fields_set() -> None:
    """Results are built on the prober's hot path: no sharing work for them."""
    first, second = CheckResult.model_validate(RESULT), CheckResult.model_validate(RESULT)
    assert first.__pydantic_fields_set__ is not second.__pydantic_fields_set__
