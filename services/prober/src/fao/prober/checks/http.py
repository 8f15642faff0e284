"""HTTP(S) checks with aiohttp: one long-lived session, a new connection for every check.

Why this shape (../shared/notes/prober-performance.md): an HTTP check must stay well under the
280 µs of CPU that blackbox_exporter spends per probe. aiohttp with ``TCPConnector(force_close=True)``
costs ≈130–160 µs per check, httpx ≈600–700 µs. A fresh connection per check is also what an uptime
check should measure: a pooled keep-alive connection would hide a full accept queue or a dead
listener. The session is created lazily inside the running loop and closed by ``aclose()``.

Status-only GET and HEAD checks (no body, keyword or JSON path, no client certificate) skip aiohttp:
``http_fast.py`` makes them over a raw asyncio protocol at about half the CPU, and hands back to
aiohttp whatever it does not finish itself (a redirect to follow, an unusual answer, a failure other
than the timeout), so the outcomes below are the same on both paths.

Cookies are never kept (``DummyCookieJar``) so one monitor's session cookie cannot change what another
monitor of the same host sees; proxy environment variables are ignored (``trust_env=False``).

The body is read (at most ``KEYWORD_READ_LIMIT`` bytes) only when the check has a keyword or a JSON
path; otherwise the check ends at the response headers and ``latency_ms`` is the time to the status
line.

Observations, one phase after the other: ``dns_ms`` (names only, not IP literals), ``connect_ms``
(the TCP connection), ``tls_ms`` (the https handshake: every TLS context here is ``ClientTls``'s,
timed by ``timed_handshakes``), ``first_byte_ms`` (request sent → status line), from one
``TraceConfig``; with redirects followed, those of the last request. Credentials (``basic_auth``, ``bearer_token_env``) are
read from the environment at each check and go only into the request; a client certificate
(``client_cert``/``client_key``) is loaded once per file pair into its own SSL context.

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
JSON path missing, not JSON or not ``json_expected``    ``UNEXPECTED_ANSWER``
a named secret not set, client certificate unreadable  ``INTERNAL``
``ClientResponseError`` (redirect loops), bad HTTP      ``PROTOCOL``
anything else                                          ``INTERNAL``
=====================================================  ======================
"""

from __future__ import annotations

import codecs
import json
import ssl
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import HttpProcessingError

from fao.prober.checks.contract import (
    ClientTls,
    MissingSecretError,
    Outcome,
    classify_os_error,
    describe_exception,
    secret,
    short_detail,
    timed_handshakes,
)
from fao.prober.checks.http_fast import FastHttp, eligible
from fao.schemas import ErrorKind, HttpCheck, Observations
from fao.schemas.jsonpath import as_text, find, parse_json_path

KEYWORD_READ_LIMIT = 1 << 20
"""At most this many body bytes (1 MiB) are searched for a keyword."""

DEFAULT_USER_AGENT = "fao-prober/0.1 (+uptime check)"

_UTF8_NAMES = frozenset({"utf-8", "ascii"})


class ClientCertificateError(Exception):
    """The configured client certificate or key cannot be read (the prober's set-up, not the target)."""


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
        self._client_contexts: dict[tuple[str, str | None, bool], ssl.SSLContext] = {}
        self._tls = ClientTls(alpn=("http/1.1",))
        # Status-only checks skip aiohttp (``http_fast.py``); a connection limit needs aiohttp's pool.
        self._fast = FastHttp(user_agent, resolver, self._tls) if connection_limit == 0 else None

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
                trace_configs=[_PHASES],
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

    def _ssl(self, spec: HttpCheck) -> ssl.SSLContext:
        """The shared context of ``verify_tls``, or one holding the client certificate."""
        if spec.client_cert is None:
            return self._tls.context(spec.verify_tls)
        key = (spec.client_cert, spec.client_key, spec.verify_tls)
        context = self._client_contexts.get(key)
        if context is None:
            context = self._tls.new_context(spec.verify_tls)
            try:
                context.load_cert_chain(spec.client_cert, spec.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ClientCertificateError(
                    f"client certificate {spec.client_cert} cannot be loaded: {exc.strerror or exc}"
                ) from None
            self._client_contexts[key] = context
        return context

    async def run(self, spec: HttpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """One request; see the module docstring for how failures are classified."""
        started = time.perf_counter()
        budget = timeout
        if self._fast is not None:
            try:
                headers = _headers(spec)
            except MissingSecretError as exc:
                return Outcome.failure(ErrorKind.INTERNAL, str(exc), (time.perf_counter() - started) * 1000.0)
            if eligible(spec, headers):
                outcome = await self._fast.run(spec, headers, timeout, started)
                if outcome is not None:
                    return outcome
                budget = timeout - (time.perf_counter() - started)
                if budget <= 0:
                    latency = (time.perf_counter() - started) * 1000.0
                    return Outcome.failure(ErrorKind.TIMEOUT, f"timed out after {timeout:g}s", latency)
        return await self._run_aiohttp(spec, timeout, budget, started)

    async def _run_aiohttp(self, spec: HttpCheck, timeout: float, budget: float, started: float) -> Outcome:  # noqa: ASYNC109 - see run
        """The request through aiohttp, within ``budget`` seconds (what is left of ``timeout``)."""
        phases = SimpleNamespace(dns_ms=None, connect_ms=None, tls_ms=None, first_byte_ms=None, mark=started)
        with timed_handshakes() as handshakes:
            try:
                headers = _headers(spec)
                session = self._get_session()
                async with session.request(
                    spec.method,
                    str(spec.url),
                    headers=headers,
                    data=spec.body,
                    allow_redirects=spec.follow_redirects,
                    ssl=self._ssl(spec),
                    timeout=self._client_timeout(timeout)
                    if budget == timeout
                    else aiohttp.ClientTimeout(total=budget),
                    trace_request_ctx=phases,
                ) as response:
                    _note_tls(phases, handshakes)
                    status = response.status
                    if status not in spec.expected_status:
                        latency = (time.perf_counter() - started) * 1000.0
                        return Outcome.failure(
                            ErrorKind.HTTP_STATUS,
                            f"HTTP {status}",
                            latency,
                            status,
                            observations=_observed(phases),
                        )
                    if spec.keyword is None and spec.json_path is None:
                        return Outcome.success(
                            (time.perf_counter() - started) * 1000.0, status, observations=_observed(phases)
                        )
                    body, truncated = await read_limited(response.content, KEYWORD_READ_LIMIT)
                    latency = (time.perf_counter() - started) * 1000.0
                    if spec.keyword is not None:
                        problem = keyword_problem(spec.keyword, spec.keyword_absent, body, response.charset)
                        if problem is not None:
                            where = " in the first 1 MiB" if truncated else ""
                            return Outcome.failure(
                                ErrorKind.KEYWORD,
                                problem + where,
                                latency,
                                status,
                                observations=_observed(phases),
                            )
                    answer = None
                    if spec.json_path is not None:
                        answer, problem = _json_problem(spec.json_path, spec.json_expected, body, truncated)
                        if problem is not None:
                            return Outcome.failure(
                                ErrorKind.UNEXPECTED_ANSWER,
                                problem,
                                latency,
                                status,
                                observations=_observed(phases, answer),
                            )
                    return Outcome.success(latency, status, observations=_observed(phases, answer))
            except (MissingSecretError, ClientCertificateError) as exc:
                return Outcome.failure(ErrorKind.INTERNAL, str(exc), (time.perf_counter() - started) * 1000.0)
            except Exception as exc:  # translated to data at this boundary, see the module docstring
                kind, detail = classify_http_error(exc, timeout)
                return Outcome.failure(
                    kind, detail, (time.perf_counter() - started) * 1000.0, observations=_observed(phases)
                )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _headers(spec: HttpCheck) -> dict[str, str] | None:
    """The request's headers, with the ``Authorization`` made now from the secrets in the environment."""
    if spec.basic_auth is not None:
        password = secret(spec.basic_auth.password_env) or ""
        return {
            **spec.headers,
            "Authorization": aiohttp.encode_basic_auth(spec.basic_auth.username, password),
        }
    token = secret(spec.bearer_token_env)
    if token is not None:
        return {**spec.headers, "Authorization": f"Bearer {token}"}
    return spec.headers or None


def _note_tls(phases: SimpleNamespace, handshakes: list[float]) -> None:
    """Split the last https handshake off the connect time (the trace times them as one)."""
    if handshakes and phases.connect_ms is not None:
        phases.tls_ms = handshakes[-1]
        phases.connect_ms = max(0.0, phases.connect_ms - phases.tls_ms)


def _observed(phases: SimpleNamespace, answer: str | None = None) -> Observations:
    return Observations(
        dns_ms=phases.dns_ms,
        connect_ms=phases.connect_ms,
        tls_ms=phases.tls_ms,
        first_byte_ms=phases.first_byte_ms,
        answer=answer,
    )


def _json_problem(
    path: str, expected: str | None, body: bytes, truncated: bool
) -> tuple[str | None, str | None]:
    """The value at ``path`` as text, and why the JSON rule fails (``None`` when it holds)."""
    if truncated:
        return None, "the body is larger than 1 MiB: not read as JSON"
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None, "the body is not JSON"
    found, value = find(document, parse_json_path(path))
    if not found:
        return None, f"{path} not found in the JSON body"
    text = as_text(value)
    if expected is not None and text != expected:
        return text[:500], f"{path} is {text[:100]!r}, expected {expected!r}"
    return text[:500], None


async def _phase_start(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    context.trace_request_ctx.mark = time.perf_counter()


async def _dns_end(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    phases = context.trace_request_ctx
    now = time.perf_counter()
    phases.dns_ms = (now - phases.mark) * 1000.0
    phases.mark = now  # the connection is timed from here


async def _connect_end(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    phases = context.trace_request_ctx
    phases.connect_ms = (time.perf_counter() - phases.mark) * 1000.0


async def _headers_sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    context.trace_request_ctx.mark = time.perf_counter()


async def _response_start(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    phases = context.trace_request_ctx
    phases.first_byte_ms = (time.perf_counter() - phases.mark) * 1000.0


def _phase_trace() -> aiohttp.TraceConfig:
    """Times DNS, the connection (TCP + TLS, split by ``_note_tls``) and the first byte into the
    request's ``trace_request_ctx``."""
    trace = aiohttp.TraceConfig()
    trace.on_dns_resolvehost_start.append(_phase_start)
    trace.on_dns_resolvehost_end.append(_dns_end)
    trace.on_connection_create_start.append(_phase_start)
    trace.on_connection_create_end.append(_connect_end)
    trace.on_request_headers_sent.append(_headers_sent)
    trace.on_request_end.append(_response_start)
    return trace


_PHASES = _phase_trace()


def classify_http_error(exc: Exception, timeout: float) -> tuple[ErrorKind, str]:
    """Translate an exception raised by an aiohttp request into ``(ErrorKind, detail)``."""
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return ErrorKind.DNS, short_detail(f"DNS lookup failed for {exc.host}: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ErrorKind.TLS, short_detail(f"TLS certificate: {exc.certificate_error}")
    if isinstance(exc, aiohttp.ClientSSLError):  # aiohttp's own text shows the SSL context's repr
        reason = getattr(exc.os_error, "reason", None) or exc.strerror or str(exc.os_error)
        return ErrorKind.TLS, short_detail(f"TLS handshake with {exc.host}:{exc.port} failed: {reason}")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ErrorKind.TLS, describe_exception(exc)
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return ErrorKind.TLS, "TLS certificate fingerprint mismatch"
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind, _ = classify_os_error(exc.os_error)
        if kind is ErrorKind.CONNECTION_REFUSED:
            return kind, f"connection refused by {exc.host}:{exc.port}"
        reason = exc.strerror or str(exc.os_error)
        return ErrorKind.CONNECTION_ERROR, short_detail(f"cannot connect to {exc.host}:{exc.port}: {reason}")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return ErrorKind.PROTOCOL, f"too many redirects ({len(exc.history)})"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return ErrorKind.CONNECTION_ERROR, describe_exception(exc)
    if isinstance(exc, aiohttp.ClientError | HttpProcessingError):
        return ErrorKind.PROTOCOL, describe_exception(exc)
    if isinstance(exc, OSError):
        return classify_os_error(exc)
    return ErrorKind.INTERNAL, describe_exception(exc)


async def read_limited(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
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


def keyword_problem(keyword: str, must_be_absent: bool, body: bytes, charset: str | None) -> str | None:
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
