"""What every checker promises: ``run(spec, timeout) -> Outcome``, never raising.

Outcomes are data. A checker translates its library's exceptions into an ``ErrorKind`` plus a short,
single-line ``detail`` (no tracebacks) at this boundary, so nothing above it handles exceptions from
aiohttp, sockets or resolvers.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from fao.schemas import ErrorKind, Observations

DETAIL_MAX = 200
"""Longest ``detail`` a checker reports; longer text is cut with an ellipsis."""

SpecT_contra = TypeVar("SpecT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Screenshot:
    """An image of the page a check failed on (``png``, or ``jpg`` when the PNG was too large)."""

    data: bytes
    extension: Literal["png", "jpg"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one check, before the runner stamps it with monitor, zone and time.
    ``screenshot`` never travels on the bus: the runner keeps it (``fao.prober.screenshots``)."""

    ok: bool
    latency_ms: float
    error_kind: ErrorKind = ErrorKind.NONE
    detail: str = ""
    http_status: int | None = None
    observations: Observations | None = None
    screenshot: Screenshot | None = None

    @classmethod
    def success(
        cls,
        latency_ms: float,
        http_status: int | None = None,
        *,
        detail: str = "",
        observations: Observations | None = None,
    ) -> Outcome:
        """Up; ``detail`` may carry a warning (a certificate close to expiry)."""
        return cls(True, latency_ms, ErrorKind.NONE, short_detail(detail), http_status, observations)

    @classmethod
    def failure(
        cls,
        kind: ErrorKind,
        detail: str,
        latency_ms: float,
        http_status: int | None = None,
        *,
        observations: Observations | None = None,
        screenshot: Screenshot | None = None,
    ) -> Outcome:
        return cls(False, latency_ms, kind, short_detail(detail), http_status, observations, screenshot)


class MissingSecretError(LookupError):
    """A secret named in config (``*_env``) is not set in this prober's environment."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"environment variable {name} (a secret named in the check) is not set on this prober"
        )
        self.name = name


def secret(name: str | None) -> str | None:
    """The value of the environment variable ``name`` (``None`` when no secret is named)."""
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise MissingSecretError(name)
    return value


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - started) * 1000.0


def short_detail(text: str, limit: int = DETAIL_MAX) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    return line[: limit - 1] + "…"


def describe_exception(exc: BaseException) -> str:
    """``ClassName: message`` (or just the class name), shortened; never a traceback."""
    message = str(exc)
    return short_detail(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def classify_os_error(exc: OSError) -> tuple[ErrorKind, str]:
    """Kind and detail of a socket-level failure (shared by the checkers that open sockets)."""
    if isinstance(exc, socket.gaierror):
        return ErrorKind.DNS, short_detail(f"DNS lookup failed: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return ErrorKind.CONNECTION_REFUSED, "connection refused"
    return ErrorKind.CONNECTION_ERROR, describe_exception(exc)


_HANDSHAKES: ContextVar[list[float] | None] = ContextVar("fao_tls_handshakes", default=None)


class TimedSSLObject(ssl.SSLObject):
    """The TLS state of one client connection that times its handshake, from asyncio's first
    ``do_handshake`` call (as soon as the TCP connection is up) to its end, and adds it to the
    list of the ``timed_handshakes`` block the connection was made in: a check times the TLS phase
    apart from the TCP connect. Set as a context's ``sslobject_class`` (``ClientTls`` does)."""

    handshake_began: float | None = None

    def do_handshake(self) -> None:
        if self.handshake_began is None:
            self.handshake_began = time.perf_counter()
        super().do_handshake()
        handshakes = _HANDSHAKES.get()
        if handshakes is not None:
            handshakes.append((time.perf_counter() - self.handshake_began) * 1000.0)


@contextmanager
def timed_handshakes() -> Iterator[list[float]]:
    """Within the block, the milliseconds of each TLS handshake its connections complete (with
    ``ClientTls`` contexts), in order. asyncio runs a connection's callbacks in a copy of the
    context it was made in, so the handshake finds the list even when a library made it."""
    handshakes: list[float] = []
    token = _HANDSHAKES.set(handshakes)
    try:
        yield handshakes
    finally:
        _HANDSHAKES.reset(token)


class ClientTls:
    """A checker's client SSL contexts, one per ``verify`` setting, made once (each costs
    milliseconds: loading the trust store); their handshakes are timed (``timed_handshakes``).
    ``alpn``: the protocols offered (HTTP checks offer ``http/1.1``, as aiohttp does)."""

    def __init__(self, alpn: tuple[str, ...] = ()) -> None:
        self._alpn = alpn
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def context(self, verify: bool) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            context = self._contexts[verify] = self.new_context(verify)
        return context

    def new_context(self, verify: bool) -> ssl.SSLContext:
        """A context of this kind not kept here (one that will hold a client certificate)."""
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self._alpn:
            context.set_alpn_protocols(self._alpn)
        context.sslobject_class = TimedSSLObject
        return context


class Checker(Protocol[SpecT_contra]):
    """One check type. ``run`` never raises (except ``CancelledError``); failures are ``Outcome`` data."""

    async def run(self, spec: SpecT_contra, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """Run one check of ``spec``, giving up after ``timeout`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release long-lived resources (sessions, pools). Safe to call more than once."""
        ...
