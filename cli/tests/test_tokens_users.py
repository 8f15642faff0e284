"""``fao tokens`` and ``fao users`` on FerretDB: a token is shown once and stored hashed, a
revoked token is refused, users get argon2 hashes, every change is audited without secrets, and
``fao dev up``'s first admin is made once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from typer.testing import CliRunner

from fao.cli.dev import dashboard_lines
from fao.cli.main import app
from fao.cli.web_access import FirstAdmin, ensure_first_admin
from fao.gateway.access import authenticate, token_principal
from fao.runtime.store import connect


@pytest.fixture
def env(mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)


@pytest.fixture
def db(mongo_url: str, mongo_db_name: str) -> Iterator[Database[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(mongo_url, tz_aware=True)
    try:
        yield client[mongo_db_name]
    finally:
        client.close()


def _principal(mongo_url: str, db_name: str, token: str) -> tuple[str, str] | None:
    async def look() -> tuple[str, str] | None:
        client = connect(mongo_url)
        try:
            principal = await token_principal(client[db_name], token)
            return (principal.name, principal.role) if principal else None
        finally:
            await client.close()

    return asyncio.run(look())


def test_a_token_is_shown_once_stored_hashed_and_refused_once_revoked(
    env: None, mongo_url: str, mongo_db_name: str, db: Database[dict[str, object]]
) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app, ["tokens", "create", "--name", "grafana", "--role", "operator", "--owner", "noc"]
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert re.fullmatch(r"fao_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    token_id = token.split("_")[1]
    stored = db["api_tokens"].find_one({"_id": token_id})
    assert stored is not None
    assert token not in str(stored)
    assert token.split("_")[2] not in str(stored)
    assert _principal(mongo_url, mongo_db_name, token) == ("noc", "operator")
    listed = runner.invoke(app, ["tokens", "list"]).output
    assert token_id in listed and "active" in listed and token not in listed  # noqa: PT018
    assert runner.invoke(app, ["tokens", "revoke", token_id]).output == f"revoked {token_id}\n"
    assert _principal(mongo_url, mongo_db_name, token) is None
    assert runner.invoke(app, ["tokens", "revoke", token_id]).output == f"{token_id} was already revoked\n"
    bad_role = runner.invoke(app, ["tokens", "create", "--name", "x", "--role", "root"])
    assert bad_role.exit_code == 1
    assert "unknown role" in bad_role.output
    entries = list(db["audit"].find({}).sort("at", 1))
    assert [e["action"] for e in entries] == ["token.create", "token.revoke"]
    assert all(e["source"] == "cli" for e in entries)
    assert token not in str(entries)
    assert str(stored["sha256"]) not in str(entries)


def test_users_are_created_with_argon2_changed_and_deleted_with_audit_entries(
    env: None, mongo_url: str, mongo_db_name: str, db: Database[dict[str, object]]
) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["users", "create", "somchai", "--role", "operator", "--generate"])
    assert created.exit_code == 0, created.output
    password = created.output.strip().splitlines()[-1].split(": ")[1]
    stored = db["users"].find_one({"_id": "somchai"})
    assert stored is not None
    assert str(stored["password"]).startswith("$argon2id$")
    assert password not in str(stored)

    async def check(pw: str) -> bool:
        client = connect(mongo_url)
        try:
            return await authenticate(client[mongo_db_name], "somchai", pw) is not None
        finally:
            await client.close()

    assert asyncio.run(check(password))
    assert runner.invoke(app, ["users", "create", "somchai", "--generate"]).exit_code == 1
    changed = runner.invoke(app, ["users", "passwd", "somchai", "--generate"])
    assert changed.exit_code == 0
    assert not asyncio.run(check(password))
    assert "somchai  operator" in runner.invoke(app, ["users", "list"]).output
    assert runner.invoke(app, ["users", "delete", "somchai"]).exit_code == 0
    assert db["users"].find_one({"_id": "somchai"}) is None
    assert runner.invoke(app, ["users", "delete", "somchai"]).exit_code == 1
    bad = runner.invoke(app, ["users", "create", "Bad Name!", "--generate"])
    assert bad.exit_code == 1
    assert "user name" in bad.output
    entries = list(db["audit"].find({}).sort("at", 1))
    assert [e["action"] for e in entries] == ["user.create", "user.passwd", "user.delete"]
    assert "$argon2" not in str(entries)


def test_the_first_admin_is_made_once(
    mongo_url: str, mongo_db_name: str, db: Database[dict[str, object]]
) -> None:
    now = datetime.now(UTC)
    first = asyncio.run(ensure_first_admin(mongo_url, mongo_db_name, now))
    assert first.username == "admin"
    assert first.password is not None
    stored = db["users"].find_one({"_id": "admin"})
    assert stored is not None
    assert stored["role"] == "admin"
    again = asyncio.run(ensure_first_admin(mongo_url, mongo_db_name, now))
    assert again.password is None
    assert db["users"].find_one({"_id": "admin"}) == stored, "not made again, password kept"


def test_dev_up_prints_the_password_only_when_it_made_the_admin() -> None:
    made = dashboard_lines(8080, FirstAdmin("admin", "s3cret-once"))
    assert made[0].startswith("fao: dashboard http://127.0.0.1:8080/")
    assert "s3cret-once" in made[1]
    again = dashboard_lines(8080, FirstAdmin("admin", None))
    assert "exists" in again[1]
    assert "password " not in again[1].split("(")[0]
