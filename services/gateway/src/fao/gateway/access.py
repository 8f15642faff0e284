"""Who may do what on the gateway's web face: roles, API tokens and dashboard users.

Roles are ordered: ``viewer`` (reads everything but people's contact details) < ``operator``
(also acknowledges, resolves, notes incidents and makes maintenance windows) < ``admin`` (also
sees people's contact details). Every route states the least role it needs (``fao.gateway.guard``).

- **API tokens** (``api_tokens``, created by ``fao tokens create``): ``fao_<id>_<secret>``, shown
  once; stored is the SHA-256 of the whole token under ``_id = <id>`` (a look-up by ``_id``, the
  only filter FerretDB v1 answers without a scan), compared in constant time. A revoked token
  (``revoked_at`` set) is refused at once by every replica: nothing is cached.
- **Users** (``users``, ``fao users create|passwd|delete``): argon2id password hashes
  (argon2-cffi's defaults) and an ``epoch`` that changes with the password, so a new password or a
  deleted user ends every session signed before.

Personal data: a user is an account name and a role, nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.runtime.store import Document

Role = Literal["viewer", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
RANK: Final[dict[Role, int]] = {role: i for i, role in enumerate(ROLES)}

TOKENS: Final = "api_tokens"
USERS: Final = "users"
TOKEN_PREFIX: Final = "fao_"
_TOKEN = re.compile(r"^fao_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 1024

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


class AccessError(Exception):
    """Bad input to a token or user change: the message is one line for the person."""


def allows(have: Role, need: Role) -> bool:
    return RANK[have] >= RANK[need]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's owner or a signed-in user, with the role they hold."""

    name: str
    role: Role
    via: Literal["token", "session"]

    def may(self, need: Role) -> bool:
        return allows(self.role, need)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once, never stored


async def create_token(
    db: AsyncDatabase[Document], *, name: str, owner: str, role: Role, now: datetime
) -> IssuedToken:
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if not name.strip() or not owner.strip():
        raise AccessError("a token needs a name and an owner")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    await db[TOKENS].insert_one(
        {
            "_id": token_id,
            "sha256": _sha256(token),
            "name": name.strip()[:200],
            "owner": owner.strip()[:200],
            "role": role,
            "created_at": now,
            "revoked_at": None,
        }
    )
    return IssuedToken(token_id, token)


async def list_tokens(db: AsyncDatabase[Document]) -> list[Document]:
    """Every token's record, without its hash, oldest first."""
    docs = await db[TOKENS].find({}, {"sha256": 0}).to_list()
    return sorted(docs, key=lambda d: (d["created_at"], d["_id"]))


async def revoke_token(db: AsyncDatabase[Document], token_id: str, now: datetime) -> Document:
    """Mark the token revoked (kept, for the audit trail); returns its record before."""
    doc = await db[TOKENS].find_one({"_id": token_id})
    if doc is None:
        raise AccessError(f"no token {token_id!r} (see: fao tokens list)")
    if doc.get("revoked_at") is None:
        await db[TOKENS].update_one({"_id": token_id}, {"$set": {"revoked_at": now}})
    return doc


async def token_principal(db: AsyncDatabase[Document], token: str) -> Principal | None:
    """The owner of a valid, unrevoked token, or None."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    doc = await db[TOKENS].find_one({"_id": match.group(1)})
    if doc is None or doc.get("revoked_at") is not None:
        return None
    if not hmac.compare_digest(str(doc.get("sha256", "")), _sha256(token)):
        return None
    role = doc.get("role")
    if role not in ROLES:
        return None
    return Principal(str(doc["owner"]), role, "token")


# --- users ----------------------------------------------------------------------------------------


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise AccessError(
            "a user name is 2-63 characters: lower-case letters, digits, '.', '_' or '-' (first a letter or digit)"
        )
    return username


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccessError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return password


def new_password() -> str:
    """A random password to print once (about 120 bits)."""
    return secrets.token_urlsafe(15)


async def create_user(
    db: AsyncDatabase[Document], username: str, password: str, role: Role, now: datetime
) -> None:
    """Raises ``AccessError`` when the name is taken or bad (a unique insert: two at once, one wins)."""
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    doc = {
        "_id": check_username(username),
        "password": _hasher.hash(check_password(password)),
        "role": role,
        "epoch": secrets.token_hex(8),
        "created_at": now,
        "updated_at": now,
    }
    try:
        await db[USERS].insert_one(doc)
    except DuplicateKeyError:
        raise AccessError(f"a user {username!r} already exists") from None


async def set_password(db: AsyncDatabase[Document], username: str, password: str, now: datetime) -> None:
    """A new password and a new epoch: every session of the user ends."""
    update = {
        "password": _hasher.hash(check_password(password)),
        "epoch": secrets.token_hex(8),
        "updated_at": now,
    }
    result = await db[USERS].update_one({"_id": username}, {"$set": update})
    if result.matched_count == 0:
        raise AccessError(f"no user {username!r} (see: fao users list)")


async def delete_user(db: AsyncDatabase[Document], username: str) -> Document:
    doc = await db[USERS].find_one({"_id": username}, {"password": 0})
    if doc is None:
        raise AccessError(f"no user {username!r} (see: fao users list)")
    await db[USERS].delete_one({"_id": username})
    return doc


async def list_users(db: AsyncDatabase[Document]) -> list[Document]:
    docs = await db[USERS].find({}, {"password": 0, "epoch": 0}).to_list()
    return sorted(docs, key=lambda d: str(d["_id"]))


async def user_exists(db: AsyncDatabase[Document], username: str) -> bool:
    return await db[USERS].find_one({"_id": username}, {"_id": 1}) is not None


@dataclass(frozen=True)
class Account:
    """A signed-in user as the session cookie names it."""

    username: str
    role: Role
    epoch: str


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def authenticate(db: AsyncDatabase[Document], username: str, password: str) -> Account | None:
    """The account when the password is right; None otherwise (unknown users take as long)."""
    doc = await db[USERS].find_one({"_id": username}) if USERNAME.match(username) else None
    stored = str(doc["password"]) if doc is not None else None
    if (
        not await asyncio.to_thread(verify_password, stored, password)
        or doc is None
        or doc.get("role") not in ROLES
    ):
        return None
    return Account(username, doc["role"], str(doc.get("epoch", "")))


async def current_account(db: AsyncDatabase[Document], username: str, epoch: str) -> Account | None:
    """The account a session names, if it still exists with the same password epoch."""
    doc = await db[USERS].find_one({"_id": username}, {"password": 0})
    if doc is None or doc.get("role") not in ROLES:
        return None
    if not hmac.compare_digest(str(doc.get("epoch", "")), epoch):
        return None
    return Account(username, doc["role"], epoch)
