"""HTTP(S) checks with aiohttp: one long-lived session, a new connection for every check.

Why this shape (../shared/notes/prober-performance.md): an HTTP check must stay well under the
280 µs of CPU that blackbox_exporter spends per probe. aiohttp with ``TCPConnector(force_close=True)``
costs ≈130–160 µs per check, httpx ≈600–700 µs. A fresh connection per check is also what an uptime
check should measure: a pooled keep-alive connection would hide a full accept queue or a dead
listener. The session is created lazily inside the running loop and closed by ``aclose()``.

Cookies are never kept (``DummyCookieJar``) so one monitor's session cookie cannot change what another
monitor of the same host sees; proxy environment variables are ignored (``trust_env=False``).

The body is read (at most ``KEYWORD_READ_LIMIT`` bytes) only when the check has a keyword; otherwise
the check ends at the response headers and ``latency_ms`` is the time to the status line.

Failures become ``ErrorKind`` values here, never exceptions:

=====================================================  ======================
aiohttp / socket exception                             ErrorKind
=====================================================  ======================
``TimeoutError`` (total timeout, ``ServerTimeoutError``)  ``TIMEOUT``
``ClientConnectorDNSError``                            ``DNS``
``ClientSSLError``, ``ssl.SSLError``, fingerprint        ``TLS``
``ClientConnectorError`` with ``ECONNREFUSED``         ``CONNECTION_REFUSED``
other ``ClientConnectionError`` / ``OSError``           ``CONNECTION_ERROR``
status not in ``expected_status``                      ``HTTP_STATUS`` ("HTTP 503")
keyword rule broken                                    ``KEYWORD``
``ClientResponseError`` (redirect loops), bad HTTP      ``PROTOCOL``
anything else                                          ``INTERNAL``
=====================================================  ======================
"""

from __future__ import annotations

import codecs
import ssl
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import HttpProcessingError

from fao.prober.checks.contract import Outcome, classify_os_error, describe_exception, short_detail
from fao.schemas import ErrorKind, HttpCheck

KEYWORD_READ_LIMIT = 1 << 20
"""At most this many body bytes (1 MiB) are searched for a keyword."""

DEFAULT_USER_AGENT = "fao-prober/0.1 (+uptime check)"

_UTF8_NAMES = frozenset({"utf-8", "ascii"})


class HttpChecker:
    """Runs ``HttpCheck`` specs. Create one per process; call ``aclose()`` on shutdown."""

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        resolver: AbstractResolver | None = None,
        connection_limit: int = 0,
    ) -> None:
        """``resolver`` replaces aiohttp's (tests use a fake); ``connection_limit`` 0 = unbounded
        (the runner already bounds concurrency)."""
        self._user_agent = user_agent
        self._resolver = resolver
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                force_close=True, limit=self._connection_limit, resolver=self._resolver
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent},
                trust_env=False,
            )
            self._session = session
        return session

    def _client_timeout(self, timeout: float) -> aiohttp.ClientTimeout:
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        return client_timeout

    async def run(self, spec: HttpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """One request; see the module docstring for how failures are classified."""
        started = time.perf_counter()
        try:
            session = self._get_session()
            async with session.request(
                spec.method,
                str(spec.url),
                headers=spec.headers or None,
                data=spec.body,
                allow_redirects=spec.follow_redirects,
                ssl=spec.verify_tls,  # True: default verification; False: none
                timeout=self._client_timeout(timeout),
            ) as response:
                status = response.status
                if status not in spec.expected_status:
                    latency = (time.perf_counter() - started) * 1000.0
                    return Outcome.failure(ErrorKind.HTTP_STATUS, f"HTTP {status}", latency, status)
                if spec.keyword is None:
                    return Outcome.success((time.perf_counter() - started) * 1000.0, status)
                body, truncated = await _read_limited(response.content, KEYWORD_READ_LIMIT)
                latency = (time.perf_counter() - started) * 1000.0
                problem = _keyword_problem(spec.keyword, spec.keyword_absent, body, response.charset)
                if problem is not None:
                    where = " in the first 1 MiB" if truncated else ""
                    return Outcome.failure(ErrorKind.KEYWORD, problem + where, latency, status)
                return Outcome.success(latency, status)
        except Exception as exc:  # translated to data at this boundary, see the module docstring
            kind, detail = classify_http_error(exc, timeout)
            return Outcome.failure(kind, detail, (time.perf_counter() - started) * 1000.0)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def classify_http_error(exc: Exception, timeout: float) -> tuple[ErrorKind, str]:
    """Translate an exception raised by an aiohttp request into ``(ErrorKind, detail)``."""
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return ErrorKind.DNS, short_detail(f"DNS lookup failed for {exc.host}: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ErrorKind.TLS, short_detail(f"TLS certificate: {exc.certificate_error}")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | ssl.CertificateError):
        return ErrorKind.TLS, describe_exception(exc)
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return ErrorKind.TLS, "TLS certificate fingerprint mismatch"
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind, _ = classify_os_error(exc.os_error)
        if kind is ErrorKind.CONNECTION_REFUSED:
            return kind, f"connection refused by {exc.host}:{exc.port}"
        return ErrorKind.CONNECTION_ERROR, describe_exception(exc)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return ErrorKind.PROTOCOL, f"too many redirects ({len(exc.history)})"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return ErrorKind.CONNECTION_ERROR, describe_exception(exc)
    if isinstance(exc, aiohttp.ClientError | HttpProcessingError):
        return ErrorKind.PROTOCOL, describe_exception(exc)
    if isinstance(exc, OSError):
        return classify_os_error(exc)
    return ErrorKind.INTERNAL, describe_exception(exc)


async def _read_limited(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` body bytes, and whether the body was longer."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), not content.at_eof()


def _keyword_problem(keyword: str, must_be_absent: bool, body: bytes, charset: str | None) -> str | None:
    """Why the keyword rule fails for ``body``, or ``None`` when it holds."""
    encoding = _codec_name(charset)
    if encoding in _UTF8_NAMES:
        found = keyword.encode() in body
    else:
        found = keyword in body.decode(encoding, errors="replace")
    if found and must_be_absent:
        return f"keyword {keyword!r} present"
    if not found and not must_be_absent:
        return f"keyword {keyword!r} not found"
    return None


def _codec_name(charset: str | None) -> str:
    if not charset:
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
