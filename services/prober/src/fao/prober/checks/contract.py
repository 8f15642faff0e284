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
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fao.schemas import ErrorKind, Observations

DETAIL_MAX = 200
"""Longest ``detail`` a checker reports; longer text is cut with an ellipsis."""

SpecT_contra = TypeVar("SpecT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one check, before the runner stamps it with monitor, zone and time."""

    ok: bool
    latency_ms: float
    error_kind: ErrorKind = ErrorKind.NONE
    detail: str = ""
    http_status: int | None = None
    observations: Observations | None = None

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
    ) -> Outcome:
        return cls(False, latency_ms, kind, short_detail(detail), http_status, observations)


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


class ClientTls:
    """A checker's client SSL contexts, one per ``verify`` setting, made once (each costs
    milliseconds: loading the trust store)."""

    def __init__(self) -> None:
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def context(self, verify: bool) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[verify] = context
        return context


class Checker(Protocol[SpecT_contra]):
    """One check type. ``run`` never raises (except ``CancelledError``); failures are ``Outcome`` data."""

    async def run(self, spec: SpecT_contra, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """Run one check of ``spec``, giving up after ``timeout`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release long-lived resources (sessions, pools). Safe to call more than once."""
        ...
