"""The SSH and SMTP checkers against real local peers: an asyncssh server and aiosmtpd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from aiosmtpd.smtp import SMTP

from fao.prober.checks.banners import SmtpChecker, SshChecker
from fao.schemas import ErrorKind, SmtpCheck, SshCheck
from fao.testing.certificates import TestCa


@pytest.fixture(scope="module")
async def ssh_server() -> AsyncIterator[tuple[int, str]]:
    """An asyncssh server with a fresh Ed25519 host key: its port and the key's SHA256 fingerprint."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[key], server_version="FaoTest_1.0"
    )
    port = server.sockets[0].getsockname()[1]
    yield port, key.get_fingerprint("sha256")
    server.close()
    await server.wait_closed()


async def _line_server(greeting: bytes | None) -> asyncio.Server:
    """Sends ``greeting`` and closes, or (``None``) says nothing and waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if greeting is not None:
            writer.write(greeting)
            await writer.drain()
        else:
            await reader.read()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.fixture
async def mute_port() -> AsyncIterator[int]:
    server = await _line_server(None)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_ssh_banner_and_fingerprint_match(ssh_server: tuple[int, str]) -> None:
    port, fingerprint = ssh_server
    spec = SshCheck(host="127.0.0.1", port=port, banner=r"^SSH-2\.0-FaoTest_", fingerprint=fingerprint)
    outcome = await SshChecker().run(spec, 3.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.banner == "SSH-2.0-FaoTest_1.0"
    assert outcome.observations.answer == fingerprint


async def test_ssh_wrong_fingerprint_is_unexpected_answer(ssh_server: tuple[int, str]) -> None:
    port, fingerprint = ssh_server
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    outcome = await SshChecker().run(SshCheck(host="127.0.0.1", port=port, fingerprint=other), 3.0)
    assert outcome.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert outcome.detail == f"host key {fingerprint} is not the expected {other}"


async def test_ssh_wrong_banner_is_unexpected_answer(ssh_server: tuple[int, str]) -> None:
    outcome = await SshChecker().run(SshCheck(host="127.0.0.1", port=ssh_server[0], banner="OpenSSH_9"), 3.0)
    assert outcome.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert outcome.detail == "banner 'SSH-2.0-FaoTest_1.0' does not match 'OpenSSH_9'"


async def test_ssh_peer_that_is_not_ssh_is_protocol() -> None:
    server = await _line_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        outcome = await SshChecker().run(
            SshCheck(host="127.0.0.1", port=server.sockets[0].getsockname()[1]), 2.0
        )
    finally:
        server.close()
    assert outcome.error_kind is ErrorKind.PROTOCOL
    assert outcome.detail == "connection closed by the server"


async def test_ssh_silent_peer_is_timeout_and_closed_port_refused(mute_port: int, closed_port: int) -> None:
    silent = await SshChecker().run(SshCheck(host="127.0.0.1", port=mute_port), 0.3)
    assert silent.error_kind is ErrorKind.TIMEOUT
    refused = await SshChecker().run(SshCheck(host="127.0.0.1", port=closed_port), 1.0)
    assert refused.error_kind is ErrorKind.CONNECTION_REFUSED


class _Smtp:
    def __init__(self, ca: TestCa, plain: int, tls: int) -> None:
        self.ca = ca
        self.plain = plain
        self.tls = tls


@pytest.fixture(scope="module")
async def smtp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_Smtp]:
    """Two aiosmtpd servers: one without STARTTLS, one offering it with a certificate for localhost."""
    ca = TestCa(Path(tmp_path_factory.mktemp("smtp")))
    context = ca.issue("mail", ["localhost"]).server_context()
    loop = asyncio.get_running_loop()

    class _Handler:
        pass

    plain = await loop.create_server(
        lambda: SMTP(_Handler(), hostname="mail.test", ident="FaoMail 1.0"), "127.0.0.1", 0
    )
    tls = await loop.create_server(
        lambda: SMTP(_Handler(), hostname="mail.test", ident="FaoMail 1.0", tls_context=context),
        "127.0.0.1",
        0,
    )
    yield _Smtp(ca, plain.sockets[0].getsockname()[1], tls.sockets[0].getsockname()[1])
    plain.close()
    tls.close()


def _smtp_spec(port: int, **fields: Any) -> SmtpCheck:
    return SmtpCheck.model_validate({"host": "localhost", "port": port, **fields})


async def test_smtp_banner_is_up(smtp: _Smtp) -> None:
    outcome = await SmtpChecker().run(_smtp_spec(smtp.plain, banner="FaoMail"), 3.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.banner is not None
    assert outcome.observations.banner.startswith("mail.test FaoMail 1.0")


async def test_smtp_wrong_banner_is_unexpected_answer(smtp: _Smtp) -> None:
    outcome = await SmtpChecker().run(_smtp_spec(smtp.plain, banner="Postfix"), 3.0)
    assert outcome.error_kind is ErrorKind.UNEXPECTED_ANSWER


async def test_smtp_starttls_verified_with_the_ca(smtp: _Smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca.ca_file))
    outcome = await SmtpChecker().run(_smtp_spec(smtp.tls, starttls=True), 3.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.tls_ms is not None


async def test_smtp_starttls_untrusted_certificate_is_tls(smtp: _Smtp) -> None:
    outcome = await SmtpChecker().run(_smtp_spec(smtp.tls, starttls=True), 3.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail.startswith("certificate not valid: ")
    unverified = await SmtpChecker().run(_smtp_spec(smtp.tls, starttls=True, verify_tls=False), 3.0)
    assert unverified.ok, unverified.detail


async def test_smtp_without_starttls_offer_is_tls(smtp: _Smtp) -> None:
    outcome = await SmtpChecker().run(_smtp_spec(smtp.plain, starttls=True), 3.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail == "the server does not offer STARTTLS"


async def test_smtp_refusing_greeting_is_protocol() -> None:
    server = await _line_server(b"554 no service here\r\n")
    try:
        outcome = await SmtpChecker().run(_smtp_spec(server.sockets[0].getsockname()[1]), 2.0)
    finally:
        server.close()
    assert outcome.error_kind is ErrorKind.PROTOCOL
    assert outcome.detail == "greeting 554 no service here"


async def test_smtp_silent_peer_is_timeout_and_closed_port_refused(mute_port: int, closed_port: int) -> None:
    outcome = await SmtpChecker().run(_smtp_spec(mute_port), 0.3)
    assert outcome.error_kind is ErrorKind.TIMEOUT
    refused = await SmtpChecker().run(_smtp_spec(closed_port), 1.0)
    assert (refused.error_kind, refused.detail) == (ErrorKind.CONNECTION_REFUSED, "connection refused")
