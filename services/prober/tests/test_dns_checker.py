"""The DNS checker against a real dnslib server on 127.0.0.1 (UDP and TCP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import QTYPE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from fao.prober.checks.dns import DnsChecker
from fao.schemas import DnsCheck, ErrorKind

ZONE = """\
portal.test. 60 IN A 127.0.0.10
portal.test. 60 IN A 127.0.0.11
mail.test. 60 IN MX 10 mx1.mail.test.
note.test. 60 IN TXT "v=spf1 -all"
"""


class _Zone(BaseResolver):  # type: ignore[misc]  # dnslib is untyped
    def __init__(self) -> None:
        self.records = RR.fromZone(ZONE)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name, qtype = request.q.qname, QTYPE[request.q.qtype]
        matches = [rr for rr in self.records if rr.rname == name]
        if not matches:
            reply.header.rcode = 3  # NXDOMAIN
        for rr in matches:
            if QTYPE[rr.rtype] == qtype:
                reply.add_answer(rr)
        return reply


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    """A dnslib server answering the zone above on UDP and TCP (same port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    servers = [DNSServer(_Zone(), address="127.0.0.1", port=port, tcp=tcp) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    yield port
    for server in servers:
        server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _spec(port: int, **fields: Any) -> DnsCheck:
    return DnsCheck.model_validate({"resolver": "127.0.0.1", "resolver_port": port, **fields})


async def test_expected_a_records_are_up_and_the_answer_is_observed(dns_port: int) -> None:
    outcome = await DnsChecker().run(_spec(dns_port, name="portal.test", expected=["127.0.0.10"]), 2.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.answer == "127.0.0.10, 127.0.0.11"
    assert outcome.observations.dns_ms is not None


async def test_wrong_answer_is_unexpected_answer(dns_port: int) -> None:
    outcome = await DnsChecker().run(_spec(dns_port, name="portal.test", expected=["127.0.0.99"]), 2.0)
    assert outcome.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert outcome.detail == "A portal.test: expected 127.0.0.99, got 127.0.0.10, 127.0.0.11"


async def test_mx_over_tcp_with_a_pattern(dns_port: int) -> None:
    spec = _spec(dns_port, name="mail.test", record_type="MX", protocol="tcp", pattern=r"^10 mx1\.")
    outcome = await DnsChecker().run(spec, 2.0)
    assert outcome.ok, outcome.detail
    mismatch = await DnsChecker().run(spec.model_copy(update={"pattern": "mx2"}), 2.0)
    assert mismatch.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert "no answer matches 'mx2'" in mismatch.detail


async def test_txt_expected_without_quotes(dns_port: int) -> None:
    spec = _spec(dns_port, name="note.test", record_type="TXT", expected=["v=spf1 -all"])
    assert (await DnsChecker().run(spec, 2.0)).ok


async def test_unknown_name_and_missing_type_are_dns_failures(dns_port: int) -> None:
    missing = await DnsChecker().run(_spec(dns_port, name="nothere.test"), 2.0)
    assert missing.error_kind is ErrorKind.DNS
    assert missing.detail == "nothere.test: no such name (NXDOMAIN)"
    no_type = await DnsChecker().run(_spec(dns_port, name="portal.test", record_type="AAAA"), 2.0)
    assert no_type.error_kind is ErrorKind.DNS
    assert no_type.detail == "portal.test: no AAAA record"


async def test_silent_resolver_is_timeout(silent_port: int) -> None:
    outcome = await DnsChecker().run(_spec(silent_port, name="portal.test"), 0.3)
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.detail == "timed out after 0.3s"


async def test_refused_tcp_resolver_is_connection_refused(closed_port: int) -> None:
    outcome = await DnsChecker().run(_spec(closed_port, name="portal.test", protocol="tcp"), 1.0)
    assert outcome.error_kind is ErrorKind.CONNECTION_REFUSED
    assert outcome.detail == "connection refused by the resolver"


def test_resolver_must_be_an_address() -> None:
    with pytest.raises(ValueError, match="resolver must be an IP address"):
        DnsCheck.model_validate({"name": "x.test", "resolver": "ns1.example"})
    with pytest.raises(ValueError, match="invalid regular expression"):
        DnsCheck.model_validate({"name": "x.test", "pattern": "("})
