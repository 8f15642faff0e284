"""``fao tokens create|list|revoke`` (API tokens) and ``fao users create|passwd|delete|list``
(dashboard users), over ``fao.gateway.access``. Every change is recorded in ``audit`` (source
``cli``); a token's secret and a password are never logged, stored or printed again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway import access
from fao.gateway.access import AccessError, IssuedToken, Role
from fao.runtime import audit
from fao.runtime.store import Document, connect

__all__ = [
    "AccessError",
    "FirstAdmin",
    "create_token",
    "create_user",
    "delete_user",
    "ensure_first_admin",
    "list_tokens",
    "list_users",
    "revoke_token",
    "set_password",
]

FIRST_ADMIN = "admin"


async def _record(
    db: AsyncDatabase[Document], action: str, collection: str, key: str, kind: audit.ChangeKind, actor: str,
    now: datetime, before: Document | None = None, after: Document | None = None,
) -> None:  # fmt: skip
    change = audit.Change(collection, key, kind, before=before, after=after)
    await audit.record(db, audit.entry(at=now, actor=actor, source="cli", action=action, changes=[change]))


def _public(doc: Document | None) -> Document | None:
    """A token's or user's record without its hash and epoch (what the audit log may hold)."""
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in ("sha256", "password", "epoch")}


async def create_token(
    mongo_url: str, mongo_db: str, *, name: str, owner: str, role: Role, actor: str, now: datetime
) -> IssuedToken:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        issued = await access.create_token(db, name=name, owner=owner, role=role, now=now)
        after = _public(await db[access.TOKENS].find_one({"_id": issued.token_id}))
        await _record(db, "token.create", access.TOKENS, issued.token_id, "add", actor, now, after=after)
        return issued
    finally:
        await client.close()


async def list_tokens(mongo_url: str, mongo_db: str) -> list[Document]:
    client = connect(mongo_url)
    try:
        return await access.list_tokens(client[mongo_db])
    finally:
        await client.close()


async def revoke_token(mongo_url: str, mongo_db: str, token_id: str, *, actor: str, now: datetime) -> bool:
    """True when the token was active (it is refused from now on); False when already revoked."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        before = await access.revoke_token(db, token_id, now)
        if before.get("revoked_at") is not None:
            return False
        after = _public(await db[access.TOKENS].find_one({"_id": token_id}))
        await _record(
            db, "token.revoke", access.TOKENS, token_id, "change", actor, now, _public(before), after
        )
        return True
    finally:
        await client.close()


async def create_user(
    mongo_url: str, mongo_db: str, username: str, password: str, role: Role, *, actor: str, now: datetime
) -> None:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        await access.create_user(db, username, password, role, now)
        after = _public(await db[access.USERS].find_one({"_id": username}))
        await _record(db, "user.create", access.USERS, username, "add", actor, now, after=after)
    finally:
        await client.close()


async def set_password(
    mongo_url: str, mongo_db: str, username: str, password: str, *, actor: str, now: datetime
) -> None:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        before = _public(await db[access.USERS].find_one({"_id": username}))
        await access.set_password(db, username, password, now)
        after = _public(await db[access.USERS].find_one({"_id": username}))
        await _record(db, "user.passwd", access.USERS, username, "change", actor, now, before, after)
    finally:
        await client.close()


async def delete_user(mongo_url: str, mongo_db: str, username: str, *, actor: str, now: datetime) -> None:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        before = await access.delete_user(db, username)
        await _record(db, "user.delete", access.USERS, username, "remove", actor, now, before=_public(before))
    finally:
        await client.close()


async def list_users(mongo_url: str, mongo_db: str) -> list[Document]:
    client = connect(mongo_url)
    try:
        return await access.list_users(client[mongo_db])
    finally:
        await client.close()


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    password: str | None
    """Set only when the account was made now (printed once); None: it existed already."""


async def ensure_first_admin(mongo_url: str, mongo_db: str, now: datetime) -> FirstAdmin:
    """``fao dev up``: an ``admin`` user with a random password, made once (never re-made while
    it exists, whatever its password has become)."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        if await access.user_exists(db, FIRST_ADMIN):
            return FirstAdmin(FIRST_ADMIN, None)
        password = access.new_password()
        try:
            await access.create_user(db, FIRST_ADMIN, password, "admin", now)
        except AccessError:  # made by another start at the same moment
            return FirstAdmin(FIRST_ADMIN, None)
        after = _public(await db[access.USERS].find_one({"_id": FIRST_ADMIN}))
        await _record(db, "user.create", access.USERS, FIRST_ADMIN, "add", "fao dev up", now, after=after)
        return FirstAdmin(FIRST_ADMIN, password)
    finally:
        await client.close()
