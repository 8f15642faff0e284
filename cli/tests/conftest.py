"""Shared fixtures of the CLI tests (servers come from ``fao.testing.plugin``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from fao.runtime.store import Document


@pytest.fixture
def env(nats_url: str, mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `fao` command's settings point at this test's NATS server and database."""
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)


@pytest.fixture
def client(mongo_url: str) -> Iterator[MongoClient[Document]]:
    """A synchronous client of the test's MongoDB (the CLI runs its own event loop)."""
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        yield client
    finally:
        client.close()


def stored_monitors(client: MongoClient[Document], db: str) -> dict[str, Document]:
    """The monitor documents in MongoDB, by id."""
    return {doc["_id"]: doc for doc in client[db]["monitors"].find({})}


class WriteFailure:
    """``fao.cli.apply.write_documents`` made to fail after writing its chunk (an apply failing
    half way, once something is written); ``calls`` counts the chunks tried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import fao.cli.apply as apply_module

        self.calls = 0
        real_write = apply_module.write_documents

        async def failing_write(*args: object, **kwargs: object) -> None:
            self.calls += 1
            await real_write(*args, **kwargs)  # type: ignore[arg-type]
            raise OSError("disk full (injected)")

        monkeypatch.setattr(apply_module, "write_documents", failing_write)
