"""docs/asyncapi.yaml documents the public incident stream and must match the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from fao.correlator.asyncapi import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"


def test_checked_in_asyncapi_is_current() -> None:
    """Compared as data: FastStream's channel order follows string hashing, which varies per process."""
    current = yaml.safe_load(render())
    assert yaml.safe_load(DOC.read_text()) == current, (
        "run: python -m fao.correlator.asyncapi > docs/asyncapi.yaml"
    )


def test_incident_event_schema_is_documented() -> None:
    text = render()
    assert "fao.incidents.v1.opened" in text
    assert "fao.incidents.v1.resolved" in text
    assert "IncidentEvent" in text
    assert "event_id" in text
