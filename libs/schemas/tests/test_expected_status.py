"""``expected_status``: the default (every 2xx and 3xx) is one shared object in memory, while config,
JSON and export see exactly the list they always did."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from fao.schemas import HttpCheck, Monitor
from fao.schemas.checks import DEFAULT_EXPECTED_STATUS, JourneyStep

MONITOR: dict[str, Any] = {
    "id": "web",
    "system": "portal",
    "check": {"type": "http", "url": "http://a.example/"},
}


def test_the_default_is_every_2xx_and_3xx_status() -> None:
    assert list(DEFAULT_EXPECTED_STATUS) == list(range(200, 400))
    assert 200 in HttpCheck.model_validate({"url": "http://a.example/"}).expected_status
    assert 399 in HttpCheck.model_validate({"url": "http://a.example/"}).expected_status
    assert 400 not in HttpCheck.model_validate({"url": "http://a.example/"}).expected_status


def test_monitors_with_the_default_share_one_object_left_out_given_or_read_back_from_json() -> None:
    """What keeps a prober at a few KiB per monitor: no monitor holds its own 200 integers, whether
    its config left the field out, wrote the whole range, or it came from the KV bucket's JSON."""
    left_out = Monitor.model_validate(MONITOR)
    given = Monitor.model_validate(
        MONITOR | {"check": MONITOR["check"] | {"expected_status": list(range(200, 400))}}
    )
    from_kv = Monitor.model_validate_json(left_out.model_dump_json())
    for monitor in (left_out, given, from_kv):
        assert isinstance(monitor.check, HttpCheck)
        assert monitor.check.expected_status is DEFAULT_EXPECTED_STATUS


def test_json_and_export_write_the_same_list_as_before() -> None:
    """The KV value (``model_dump_json``) still carries the full list; ``fao export`` (defaults left
    out) still omits it; a custom list is written as a list."""
    check = HttpCheck.model_validate({"url": "http://a.example/"})
    assert json.loads(check.model_dump_json())["expected_status"] == list(range(200, 400))
    assert "expected_status" not in check.model_dump(mode="json", exclude_defaults=True)
    custom = HttpCheck.model_validate({"url": "http://a.example/", "expected_status": [200, 204]})
    assert custom.model_dump(mode="json", exclude_defaults=True)["expected_status"] == [200, 204]
    assert json.loads(custom.model_dump_json())["expected_status"] == [200, 204]


def test_the_json_schema_is_still_an_array_of_status_codes() -> None:
    schema = HttpCheck.model_json_schema()["properties"]["expected_status"]
    assert schema["type"] == "array"
    assert schema["minItems"] == 1
    assert schema["items"] == {"maximum": 599, "minimum": 100, "type": "integer"}
    assert "default" not in schema


@pytest.mark.parametrize("codes", [[], [99], [600]])
def test_empty_lists_and_codes_outside_100_599_are_refused(codes: list[int]) -> None:
    with pytest.raises(ValidationError, match="expected_status"):
        HttpCheck.model_validate({"url": "http://a.example/", "expected_status": codes})


def test_journey_steps_share_the_default_too() -> None:
    step = JourneyStep.model_validate({"name": "home", "url": "http://a.example/"})
    assert step.expected_status is DEFAULT_EXPECTED_STATUS
    assert JourneyStep.model_validate(
        {"name": "x", "url": "http://a/", "expected_status": [302]}
    ).expected_status == (302,)
