"""Line-protocol checks on raw asyncio streams: SSH (banner, host key) and SMTP (banner, STARTTLS).

SSH: the server's identification line (``SSH-2.0-…``) must match ``banner``; with ``fingerprint``
the host key is fetched with asyncssh (a second, key-exchange-only connection) and compared with
the configured ``SHA256:…``. SMTP: the ``220`` greeting must match ``banner``; ``EHLO`` must be
accepted; with ``starttls`` the server must offer STARTTLS and the TLS upgrade must verify (unless
``verify_tls`` is false); the session ends with ``QUIT``.

=============================================  ======================
outcome                                        ErrorKind
=============================================  ======================
no answer within the timeout                   ``TIMEOUT``
refused / unreachable / name unknown           ``CONNECTION_REFUSED`` / ``_ERROR`` / ``DNS``
not SSH / not SMTP / a 4xx-5xx reply           ``PROTOCOL``
banner or host key not the expected one        ``UNEXPECTED_ANSWER``
STARTTLS missing or the upgrade fails          ``TLS``
=============================================  ======================
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time

import asyncssh

from fao.prober.checks.addresses import close_stream, resolve
from fao.prober.checks.contract import ClientTls, Outcome, classify_os_error, describe_exception, elapsed_ms
from fao.schemas import ErrorKind, Observations, SmtpCheck, SshCheck

_MAX_LINE = 1024


class _ReplyError(Exception):
    """The peer answered something the check does not accept (kind, detail)."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


async def _readline(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise _ReplyError(ErrorKind.PROTOCOL, "connection closed by the server")
    return line[:_MAX_LINE].decode("utf-8", errors="replace").rstrip("\r\n")


def _failure(exc: Exception, started: float, timeout: float, observations: Observations | None) -> Outcome:
    if isinstance(exc, TimeoutError):
        kind, detail = ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
    elif isinstance(exc, _ReplyError):
        kind, detail = exc.kind, exc.detail
    elif isinstance(exc, ssl.SSLCertVerificationError):
        kind, detail = ErrorKind.TLS, f"certificate not valid: {exc.verify_message or exc.reason}"
    elif isinstance(exc, ssl.SSLError):
        kind, detail = ErrorKind.TLS, f"TLS handshake failed: {exc.reason or exc}"
    elif isinstance(exc, OSError):
        kind, detail = classify_os_error(exc)
    elif isinstance(exc, asyncssh.Error):
        kind, detail = ErrorKind.PROTOCOL, describe_exception(exc)
    else:
        kind, detail = ErrorKind.INTERNAL, describe_exception(exc)
    return Outcome.failure(kind, detail, elapsed_ms(started), observations=observations)


class SshChecker:
    """Runs ``SshCheck`` specs."""

    async def run(self, spec: SshCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        observations: Observations | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                address, dns_ms = await resolve(spec.host, spec.port)
                phase = time.perf_counter()
                reader, writer = await asyncio.open_connection(address, spec.port)
                connect_ms = elapsed_ms(phase)
                banner = await _ssh_identification(reader)
                await close_stream(writer)
                writer = None
                observations = Observations(dns_ms=dns_ms, connect_ms=connect_ms, banner=banner[:300])
                if spec.banner is not None and re.search(spec.banner, banner) is None:
                    raise _ReplyError(
                        ErrorKind.UNEXPECTED_ANSWER, f"banner {banner!r} does not match {spec.banner!r}"
                    )
                if spec.fingerprint is not None:
                    key = await asyncssh.get_server_host_key(address, spec.port)
                    if key is None:
                        raise _ReplyError(ErrorKind.PROTOCOL, "the server sent no host key")
                    fingerprint = key.get_fingerprint("sha256")
                    observations = observations.model_copy(update={"answer": fingerprint})
                    if fingerprint.rstrip("=") != spec.fingerprint.rstrip("="):
                        raise _ReplyError(
                            ErrorKind.UNEXPECTED_ANSWER,
                            f"host key {fingerprint} is not the expected {spec.fingerprint}",
                        )
        except Exception as exc:  # translated to data at this boundary
            return _failure(exc, started, timeout, observations)
        finally:
            await close_stream(writer)
        return Outcome.success(elapsed_ms(started), observations=observations)

    async def aclose(self) -> None:
        return None


async def _ssh_identification(reader: asyncio.StreamReader) -> str:
    """The ``SSH-`` line; RFC 4253 lets a server send other lines before it."""
    for _ in range(10):
        line = await _readline(reader)
        if line.startswith("SSH-"):
            return line
    raise _ReplyError(ErrorKind.PROTOCOL, "no SSH identification line: not an SSH server")


class SmtpChecker:
    """Runs ``SmtpCheck`` specs. Keeps one SSL context per ``verify_tls``."""

    def __init__(self) -> None:
        self._tls = ClientTls()

    async def run(self, spec: SmtpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        observations: Observations | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                address, dns_ms = await resolve(spec.host, spec.port)
                phase = time.perf_counter()
                reader, writer = await asyncio.open_connection(address, spec.port)
                connect_ms = elapsed_ms(phase)
                code, greeting = await _smtp_reply(reader)
                first_byte_ms = elapsed_ms(phase)
                observations = Observations(
                    dns_ms=dns_ms,
                    connect_ms=connect_ms,
                    first_byte_ms=first_byte_ms,
                    banner=greeting[0][:300],
                )
                if code != 220:
                    raise _ReplyError(ErrorKind.PROTOCOL, f"greeting {code} {greeting[0]}")
                if spec.banner is not None and re.search(spec.banner, greeting[0]) is None:
                    raise _ReplyError(
                        ErrorKind.UNEXPECTED_ANSWER, f"banner {greeting[0]!r} does not match {spec.banner!r}"
                    )
                extensions = await _command(reader, writer, f"EHLO {spec.ehlo_name}", 250)
                if spec.starttls:
                    if not any(line.upper().startswith("STARTTLS") for line in extensions):
                        raise _ReplyError(ErrorKind.TLS, "the server does not offer STARTTLS")
                    await _command(reader, writer, "STARTTLS", 220)
                    phase = time.perf_counter()
                    await writer.start_tls(self._tls.context(spec.verify_tls), server_hostname=spec.host)
                    observations = observations.model_copy(update={"tls_ms": elapsed_ms(phase)})
                    await _command(reader, writer, f"EHLO {spec.ehlo_name}", 250)
                writer.write(b"QUIT\r\n")
                with contextlib.suppress(OSError, _ReplyError):
                    await _smtp_reply(reader)
        except Exception as exc:  # translated to data at this boundary
            return _failure(exc, started, timeout, observations)
        finally:
            await close_stream(writer)
        return Outcome.success(elapsed_ms(started), observations=observations)

    async def aclose(self) -> None:
        return None


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One (possibly multi-line) reply: its code and the text of each line."""
    lines: list[str] = []
    while len(lines) < 100:
        line = await _readline(reader)
        if len(line) < 3 or not line[:3].isdigit():
            raise _ReplyError(ErrorKind.PROTOCOL, f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] != "-":
            return int(line[:3]), lines
    raise _ReplyError(ErrorKind.PROTOCOL, "SMTP reply longer than 100 lines")


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str, want: int
) -> list[str]:
    writer.write(command.encode() + b"\r\n")
    await writer.drain()
    code, lines = await _smtp_reply(reader)
    if code != want:
        raise _ReplyError(
            ErrorKind.PROTOCOL, f"{command.split()[0]} answered {code} {lines[0] if lines else ''}"
        )
    return lines
