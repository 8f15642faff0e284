"""The fast path of HTTP checks: a status-only GET or HEAD over a raw asyncio protocol.

Most uptime checks ask one thing: does a new connection get an expected status? For those aiohttp
builds a request object, a yarl URL, a connector key, timers, trace signals and a response parser,
≈130–160 µs of CPU per check here; the same exchange over a bare ``asyncio.Protocol`` costs about
half (../shared/notes/prober-performance.md: raw streams 65–109 µs). ``FastHttp.run`` makes it:
resolve (names through the checker's resolver, cached ``DNS_TTL`` seconds like aiohttp's
connector; IP literals as they are), connect (TLS for ``https``, verified or not as the check says),
write the request once (``Host``, ``User-Agent``, ``Accept``, ``Connection: close`` and the
check's headers), read up to the end of the response headers, close. ``latency_ms`` is the time to
the headers, as with aiohttp; observations are timed the same way, one phase after the other
(``dns_ms`` on a lookup, ``connect_ms`` the TCP connection, ``tls_ms`` the handshake for https,
``first_byte_ms`` from the request written to the headers read).

Which checks (``eligible``): ``http``/``https`` URLs without a user or password in them and not
on an IPv6 literal, GET or HEAD, no body, no keyword or JSON path, no client certificate, header
names and values without CR/LF. The others
go through aiohttp as before.

Outcomes are aiohttp's: a status in ``expected_status`` is up, another is ``HTTP_STATUS``
("HTTP 503"), the timeout is ``TIMEOUT`` ("timed out after 10s"). Anything else — a redirect to
follow, a status line that is not HTTP/1.x, a 1xx, a lookup or connection failure, a TLS error, a
reset — is handed back (``None``): the checker makes the request again with aiohttp within what is
left of the timeout, so redirects, error kinds and details stay exactly what aiohttp reports. A
failing target therefore gets two attempts per check (the first fails fast: refused, reset,
unknown name), never two timeouts. Unlike aiohttp the header lines after the status line are not
validated.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver

from fao.prober.checks.contract import ClientTls, Outcome, timed_handshakes
from fao.schemas import ErrorKind, HttpCheck, Observations

DNS_TTL = 10.0
"""Seconds a looked-up address is reused (aiohttp's connector default, ``ttl_dns_cache``)."""

HEADER_LIMIT = 64 * 1024
"""Response headers longer than this are handed to aiohttp (which refuses them as it does)."""

_DNS_CACHE_MAX = 10_000
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def eligible(spec: HttpCheck, headers: Mapping[str, str] | None) -> bool:
    """Whether ``FastHttp`` can make this check (see the module docstring); ``headers`` are the
    request's own (the check's, with ``Authorization`` from the environment)."""
    if (
        spec.method not in ("GET", "HEAD")
        or spec.body is not None
        or spec.keyword is not None
        or spec.json_path is not None
        or spec.client_cert is not None
        or spec.url.scheme not in _DEFAULT_PORTS
        or (spec.url.host or "").startswith("[")
        or spec.url.username is not None  # aiohttp sends a URL's user and password as basic auth
    ):
        return False
    return headers is None or not any(_unsafe(k) or _unsafe(v) for k, v in headers.items())


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Exchange(asyncio.Protocol):
    """Writes the request on connection; resolves ``done`` with the response headers."""

    __slots__ = ("_buffer", "_request", "connected_at", "done", "sent_at", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self._request = request
        self._buffer = b""
        self.done = done
        self.connected_at = 0.0
        self.sent_at = 0.0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_at = time.perf_counter()
        self.transport = transport
        transport.write(self._request)  # type: ignore[attr-defined]  # a stream transport
        self.sent_at = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        buffer = self._buffer + data if self._buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            self.done.set_result(buffer[:end])
        elif len(buffer) > HEADER_LIMIT:
            self.done.set_exception(ValueError("response headers too long"))
        else:
            self._buffer = buffer

    def eof_received(self) -> bool | None:
        if not self.done.done():
            self.done.set_exception(ConnectionResetError("closed before the response headers"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("closed before the response headers"))


class FastHttp:
    """Status-only HTTP checks over a raw protocol; one per ``HttpChecker`` (sharing its ``tls``)."""

    def __init__(self, user_agent: str, resolver: AbstractResolver | None, tls: ClientTls) -> None:
        self._user_agent = user_agent
        self._resolver = resolver
        self._addresses: dict[tuple[str, int], tuple[float, str]] = {}  # (host, port) → (until, ip)
        self._tls = tls

    async def _address(self, host: str, port: int) -> tuple[str, float | None]:
        """The IP to connect to, and the lookup's milliseconds (``None``: no lookup made)."""
        key = (host, port)
        cached = self._addresses.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1], None
        started = time.perf_counter()
        resolver = self._resolver
        if resolver is None:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            ip = str(infos[0][4][0])
        else:
            ip = (await resolver.resolve(host, port, family=socket.AF_UNSPEC))[0]["host"]
        if len(self._addresses) >= _DNS_CACHE_MAX:
            self._addresses.clear()
        self._addresses[key] = (now + DNS_TTL, ip)
        return ip, (time.perf_counter() - started) * 1000.0

    async def run(
        self,
        spec: HttpCheck,
        headers: Mapping[str, str] | None,
        timeout: float,  # noqa: ASYNC109 - the check's own timeout, reported as data (as HttpChecker.run)
        started: float,
    ) -> Outcome | None:
        """The check's outcome, or ``None`` when aiohttp must make it (see the module docstring).
        ``started`` is the check's start (``time.perf_counter()``); ``timeout`` bounds it all."""
        url = spec.url
        host = url.host or ""
        scheme = url.scheme
        port = url.port or _DEFAULT_PORTS[scheme]
        dns_ms: float | None = None
        connect_ms: float | None = None
        tls_ms: float | None = None
        exchange: _Exchange | None = None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout - (time.perf_counter() - started)):
                if _is_ip(host):
                    ip = host
                else:
                    ip, dns_ms = await self._address(host, port)
                mark = time.perf_counter()
                exchange = _Exchange(self._request(spec, host, port, headers), loop.create_future())
                made = exchange
                with timed_handshakes() as handshakes:
                    await loop.create_connection(
                        lambda: made, ip, port,
                        ssl=self._tls.context(spec.verify_tls) if scheme == "https" else None,
                        server_hostname=host.rstrip(".") if scheme == "https" else None,
                    )  # fmt: skip
                connect_ms = (exchange.connected_at - mark) * 1000.0
                if handshakes:
                    tls_ms = handshakes[-1]
                    connect_ms = max(0.0, connect_ms - tls_ms)
                head = await exchange.done
        except TimeoutError:
            return Outcome.failure(
                ErrorKind.TIMEOUT,
                f"timed out after {timeout:g}s",
                (time.perf_counter() - started) * 1000.0,
                observations=Observations(dns_ms=dns_ms, connect_ms=connect_ms, tls_ms=tls_ms),
            )
        except Exception:  # aiohttp makes the check again and reports the failure its way
            return None
        finally:
            if exchange is not None and exchange.transport is not None:
                exchange.transport.close()
        answered = time.perf_counter()
        latency = (answered - started) * 1000.0
        status = _status(head)
        if status is None or status < 200 or (spec.follow_redirects and status in _REDIRECTS):
            return None
        observations = Observations(
            dns_ms=dns_ms,
            connect_ms=connect_ms,
            tls_ms=tls_ms,
            first_byte_ms=(answered - exchange.sent_at) * 1000.0,
        )
        if status not in spec.expected_status:
            return Outcome.failure(
                ErrorKind.HTTP_STATUS, f"HTTP {status}", latency, status, observations=observations
            )
        return Outcome.success(latency, status, observations=observations)

    def _request(self, spec: HttpCheck, host: str, port: int, headers: Mapping[str, str] | None) -> bytes:
        url = spec.url
        target = url.path or "/"
        if url.query:
            target = f"{target}?{url.query}"
        host_header = host if port == _DEFAULT_PORTS[url.scheme] else f"{host}:{port}"
        lines = {
            "Host": host_header,
            "User-Agent": self._user_agent,
            "Accept": "*/*",
            "Connection": "close",
        }
        if headers:
            given = {name.lower() for name in headers}
            lines = {k: v for k, v in lines.items() if k.lower() not in given} | dict(headers)
        head = "".join(f"{name}: {value}\r\n" for name, value in lines.items())
        return f"{spec.method} {target} HTTP/1.1\r\n{head}\r\n".encode("latin-1")


def _status(head: bytes) -> int | None:
    """The status of an ``HTTP/1.x NNN reason`` line; ``None`` when it is not one."""
    line_end = head.find(b"\r\n")
    line = head if line_end < 0 else head[:line_end]
    if not line.startswith(b"HTTP/1.") or len(line) < 12 or line[12:13] not in (b"", b" "):
        return None
    code = line[9:12]
    if line[8:9] != b" " or not code.isdigit():
        return None
    return int(code)
