"""Dashboard sessions, CSRF tokens and the login rate limit.

- **Session cookie** ``fao_session``: ``<username>|<role>|<epoch>|<expires>|<nonce>`` and its
  HMAC-SHA256, base64url. HttpOnly, SameSite=Lax, Secure unless ``FAO_WEB_COOKIE_SECURE=false``
  (plain http on loopback for development). The server re-reads the user on every request: a
  deleted user or a changed password (new epoch) ends the session at once.
- **CSRF**: every form carries ``csrf`` = HMAC(secret, ``csrf|<nonce>``) of the session's nonce; before
  sign-in, of a random nonce in the ``fao_presession`` cookie. A POST without the right token is
  refused (403) before anything else is read.
- **Signing secret**: ``FAO_WEB_SECRET`` when set; otherwise generated once and kept in MongoDB
  (``gateway_secrets``, inserted with a unique ``_id`` so every replica reads the same one).
- **Login rate limit**: each attempt for a (user, client address) pair takes one of
  ``FAO_LOGIN_LIMIT`` slot documents of the current fixed window (``login_slots``, unique ``_id``
  inserts: exact with any number of replicas on FerretDB, where a counter would race); with no
  slot left the attempt is refused (429) without checking the password. A successful sign-in frees
  the pair's slots.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.gateway.access import ROLES, Account
from fao.runtime.store import Document

SESSION_COOKIE: Final = "fao_session"
PRESESSION_COOKIE: Final = "fao_presession"
LANGUAGE_COOKIE: Final = "fao_lang"
SECRETS: Final = "gateway_secrets"
LOGIN_SLOTS: Final = "login_slots"
_SECRET_ID: Final = "session-signing"


async def signing_secret(db: AsyncDatabase[Document], configured: str | None) -> bytes:
    """The configured secret, or the one every replica shares from MongoDB (made once)."""
    if configured:
        return configured.encode()
    with contextlib.suppress(DuplicateKeyError):
        await db[SECRETS].insert_one({"_id": _SECRET_ID, "value": secrets.token_hex(32)})
    doc = await db[SECRETS].find_one({"_id": _SECRET_ID})
    assert doc is not None
    return str(doc["value"]).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    epoch: str
    expires: int
    nonce: str


class Signer:
    """Signs and reads session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode(), hashlib.sha256).digest())

    def session_cookie(self, account: Account, now: datetime, ttl: timedelta) -> str:
        expires = int((now + ttl).timestamp())
        body = f"{account.username}|{account.role}|{account.epoch}|{expires}|{secrets.token_hex(16)}"
        return f"{_b64(body.encode())}.{self._mac('session|' + body)}"

    def read_session(self, cookie: str | None, now: datetime) -> Session | None:
        """The session a cookie holds if its signature is ours and it has not expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        encoded, mac = cookie.split(".")
        try:
            body = _unb64(encoded).decode()
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session|" + body)):
            return None
        parts = body.split("|")
        if len(parts) != 5 or parts[1] not in ROLES or not parts[3].isdigit():
            return None
        if int(parts[3]) <= now.timestamp():
            return None
        return Session(parts[0], parts[1], parts[2], int(parts[3]), parts[4])

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf|" + nonce)

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), token)


def new_nonce() -> str:
    return secrets.token_hex(16)


class LoginLimiter:
    """At most ``limit`` sign-in attempts per (user, address) per fixed ``window``."""

    def __init__(self, db: AsyncDatabase[Document], limit: int, window: timedelta) -> None:
        self._db, self._limit, self._window = db, limit, window

    def _key(self, username: str, address: str, now: datetime) -> str:
        start = int(now.timestamp() // self._window.total_seconds())
        digest = hashlib.sha256(f"{username}|{address}".encode()).hexdigest()[:24]
        return f"{digest}|{start}"

    async def take(self, username: str, address: str, now: datetime) -> bool:
        """One attempt's slot; False when the window's slots are all taken."""
        key = self._key(username, address, now)
        for n in range(self._limit):
            try:
                await self._db[LOGIN_SLOTS].insert_one({"_id": f"{key}|{n}", "key": key, "at": now})
            except DuplicateKeyError:
                continue
            return True
        return False

    async def clear(self, username: str, address: str, now: datetime) -> None:
        key = self._key(username, address, now)
        for n in range(self._limit):
            await self._db[LOGIN_SLOTS].delete_one({"_id": f"{key}|{n}"})

    async def forget_old(self, now: datetime) -> int:
        result = await self._db[LOGIN_SLOTS].delete_many({"at": {"$lt": now - 2 * self._window}})
        return result.deleted_count
