"""The TLS checker against real TLS servers on 127.0.0.1 with certificates made by the test CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fao.prober.checks.tls import TlsChecker
from fao.schemas import ErrorKind, TlsCheck
from fao.testing.certificates import TestCa


async def _serve(context: ssl.SSLContext | None) -> asyncio.Server:
    """Accepts, does the handshake when given a context (or never, without one), then waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


class Peers:
    def __init__(self, ca: TestCa, ports: dict[str, int]) -> None:
        self.ca = ca
        self.ports = ports

    def spec(self, name: str, **fields: Any) -> TlsCheck:
        return TlsCheck.model_validate(
            {
                "host": "127.0.0.1",
                "port": self.ports[name],
                "server_name": "localhost",
                "ca_file": str(self.ca.ca_file),
                **fields,
            }
        )


@pytest.fixture(scope="module")
async def peers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Peers]:
    ca = TestCa(Path(tmp_path_factory.mktemp("tls")))
    issued = {
        "fresh": ca.issue("fresh", ["localhost", "127.0.0.1"], days=90),
        "five_days": ca.issue("five", ["localhost"], days=5),
        "expired": ca.issue("expired", ["localhost"], expired=True),
        "other_host": ca.issue("other", ["other.example.go.th"], days=90),
    }
    servers = {name: await _serve(cert.server_context()) for name, cert in issued.items()}
    servers["mute"] = await _serve(None)
    ports = {name: server.sockets[0].getsockname()[1] for name, server in servers.items()}
    yield Peers(ca, ports)
    for server in servers.values():
        server.close()


async def test_valid_certificate_is_up_with_phases_and_expiry(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("fresh"), 2.0)
    assert outcome.ok, outcome.detail
    assert outcome.detail == ""
    seen = outcome.observations
    assert seen is not None
    assert seen.connect_ms is not None
    assert seen.tls_ms is not None
    assert seen.cert_days_left is not None
    assert 89.9 < seen.cert_days_left < 90.1


async def test_five_days_left_is_down_below_critical_and_warned_below_warn(peers: Peers) -> None:
    critical = await TlsChecker().run(peers.spec("five_days"), 2.0)
    assert critical.error_kind is ErrorKind.TLS
    assert "(5.0 days left), under 7" in critical.detail
    warned = await TlsChecker().run(peers.spec("five_days", critical_days=3), 2.0)
    assert warned.ok
    assert warned.detail.startswith("warning: certificate expires ")
    assert "(5.0 days left)" in warned.detail


async def test_expired_certificate_fails_verification(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("expired"), 2.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail == "certificate not valid: certificate has expired"


async def test_expired_certificate_without_verification_is_still_down(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("expired", verify=False), 2.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail.startswith("certificate expired ")


async def test_wrong_host_fails_verification(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("other_host"), 2.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert "Hostname mismatch" in outcome.detail


async def test_untrusted_chain_fails_verification(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("fresh", ca_file=None), 2.0)
    assert outcome.error_kind is ErrorKind.TLS
    assert outcome.detail == "certificate not valid: unable to get local issuer certificate"


async def test_server_that_never_handshakes_is_timeout(peers: Peers) -> None:
    outcome = await TlsChecker().run(peers.spec("mute"), 0.3)
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.observations is not None
    assert outcome.observations.connect_ms is not None


async def test_closed_port_is_refused(closed_port: int) -> None:
    outcome = await TlsChecker().run(TlsCheck(host="127.0.0.1", port=closed_port), 1.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED


def test_critical_cannot_exceed_warn() -> None:
    with pytest.raises(ValueError, match="critical_days"):
        TlsCheck(host="x", warn_days=3, critical_days=7)
