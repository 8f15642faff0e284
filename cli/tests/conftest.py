"""Shared fixtures of the CLI tests (servers come from ``fao.testing.plugin``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def env(nats_url: str, mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `fao` command's settings point at this test's NATS server and database."""
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)
