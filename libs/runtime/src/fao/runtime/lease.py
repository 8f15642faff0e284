"""A lease in NATS KV so that only one instance of a service is active; the others wait as standbys.

The lease is the key ``lease.<name>`` in the bucket ``fao-leases``, whose ``max_age`` is the lease
time-to-live: a key that is not renewed disappears by itself, so a crashed holder is replaced
within about one TTL. Every write is conditional on the key's revision, so two instances can never
both believe they hold it:

- ``acquire()`` creates the key only if it is absent (or deleted), polling about every ``ttl / 4``
  while another holder's key lives;
- a keep-alive task rewrites it about every ``ttl / 3`` with ``update(last=<our revision>)``; when
  that fails because the revision moved (someone else holds it, or ours expired) — or no renewal
  has succeeded for longer than ``ttl`` — ``lost`` is set and renewing stops;
- ``release()`` deletes the key, again only if it is still ours, so a standby takes over at once.

A holder that sees ``lost`` must stop doing the work at once (the service runner stops the
process: crash-only; its supervisor restarts it as a standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from fao.schemas import subjects

log = structlog.get_logger()

DEFAULT_TTL = 6.0
KV_DUPLICATE_WINDOW_MAX = 120.0
# JetStream's "wrong last sequence" answers to a conditional write (nats-py maps them to
# KeyWrongLastSequenceError for update() but not for delete()).
WRONG_LAST_SEQUENCE = (10071, 10164)


def default_holder_id() -> str:
    """``<hostname>-<pid>``: tells operators which process holds a lease."""
    return f"{socket.gethostname()}-{os.getpid()}"


def lease_key(name: str) -> str:
    return f"lease.{name}"


async def leases_bucket(js: JetStreamContext, ttl: float = DEFAULT_TTL) -> KeyValue:
    """The leases bucket, created on first use; an existing one with another TTL is brought to
    ``ttl`` (every Fao process of a deployment uses the same ``FAO_LEASE_TTL``)."""
    try:
        kv = await js.key_value(subjects.LEASES_BUCKET)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=subjects.LEASES_BUCKET, history=1, ttl=ttl, storage=StorageType.FILE)
        try:
            return await js.create_key_value(config)
        except BadRequestError:  # created at the same moment by another process, maybe with another TTL
            kv = await js.key_value(subjects.LEASES_BUCKET)
    status = await kv.status()
    if status.ttl is None or abs(status.ttl - ttl) > 0.001:
        stream = status.stream_info.config
        stream.max_age = ttl
        stream.duplicate_window = min(ttl, KV_DUPLICATE_WINDOW_MAX)
        await js.update_stream(stream)
        log.info("leases_bucket_ttl_changed", old=status.ttl, new=ttl)
    return kv


class Lease:
    """One holder's view of the lease ``name`` (see the module docstring)."""

    def __init__(self, js: JetStreamContext, name: str, holder_id: str, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.name = name
        self.holder_id = holder_id
        self.ttl = ttl
        self.lost = asyncio.Event()
        self._js = js
        self._key = lease_key(name)
        self._kv: KeyValue | None = None
        self._revision: int | None = None
        self._renewed_at = 0.0
        self._keep_alive: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        """True from ``acquire()`` until the lease is lost or released."""
        return self._revision is not None and not self.lost.is_set()

    @property
    def revision(self) -> int | None:
        """The KV revision of our last successful write (None when not held)."""
        return self._revision

    async def acquire(self) -> None:
        """Wait until this holder has the lease, then keep it alive in the background."""
        if self._revision is not None:
            raise RuntimeError(f"lease {self.name} is already held by this object")
        kv = self._kv = await leases_bucket(self._js, self.ttl)
        value = self.holder_id.encode()
        waiting_for: str | None = None
        retry_now = False
        while True:
            try:
                revision = await kv.create(self._key, value)
                break
            except KeyWrongLastSequenceError:
                holder = await self._current_holder(kv)
                if holder is not None and holder != waiting_for:
                    log.info("lease_held_by_other", lease=self.name, holder=holder, me=self.holder_id)
                    waiting_for = holder
                # Gone between our two requests (expired or released): try again at once, but once.
                retry_now = holder is None and not retry_now
                if retry_now:
                    continue
            except Exception as exc:  # NATS unreachable for a moment: a standby just keeps trying
                log.warning("lease_acquire_failed", lease=self.name, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.ttl / 4)
        self._revision = revision
        self._renewed_at = asyncio.get_running_loop().time()
        self.lost.clear()
        self._keep_alive = asyncio.create_task(self._renew_forever(kv, value), name=f"lease-{self.name}")
        log.info("lease_acquired", lease=self.name, holder=self.holder_id, revision=revision)

    async def _current_holder(self, kv: KeyValue) -> str | None:
        try:
            entry = await kv.get(self._key)
        except KeyNotFoundError:  # also a deleted key (nats-py maps KeyDeletedError to it)
            return None
        return (entry.value or b"").decode(errors="replace")

    async def _renew_forever(self, kv: KeyValue, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                self._revision = await kv.update(self._key, value, last=self._revision)
            except KeyWrongLastSequenceError:
                holder = await self._holder_or_unknown(kv)
                self._lose(f"the lease moved on (now held by {holder})")
                return
            except Exception as exc:
                silent = loop.time() - self._renewed_at
                if silent > self.ttl:
                    self._lose(f"not renewed for {silent:.1f} s: {type(exc).__name__}: {exc}")
                    return
                log.warning("lease_renew_failed", lease=self.name, error=f"{type(exc).__name__}: {exc}")
                continue
            self._renewed_at = loop.time()

    async def _holder_or_unknown(self, kv: KeyValue) -> str:
        try:
            return await self._current_holder(kv) or "nobody: it expired"
        except Exception:
            return "unknown"

    def _lose(self, reason: str) -> None:
        log.error("lease_lost", lease=self.name, holder=self.holder_id, reason=reason)
        self.lost.set()

    async def release(self) -> None:
        """Stop renewing and delete the key if it is still ours, so a standby takes over at once.
        Safe to call when never acquired, after ``lost``, or twice."""
        task, self._keep_alive = self._keep_alive, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        revision, self._revision = self._revision, None
        if revision is None or self._kv is None or self.lost.is_set():
            return
        try:
            await self._kv.delete(self._key, last=revision)
        except APIError as exc:
            if exc.err_code not in WRONG_LAST_SEQUENCE:
                log.warning("lease_release_failed", lease=self.name, error=f"{type(exc).__name__}: {exc}")
                return
            log.warning("lease_release_skipped", lease=self.name, reason="no longer ours")
            return
        except Exception as exc:  # it expires by itself within the TTL
            log.warning("lease_release_failed", lease=self.name, error=f"{type(exc).__name__}: {exc}")
            return
        log.info("lease_released", lease=self.name, holder=self.holder_id)
