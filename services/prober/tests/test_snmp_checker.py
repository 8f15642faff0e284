"""The SNMP checker against a real pysnmp agent on 127.0.0.1 (v2c community and a v3 SHA/AES user)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context

from fao.prober.checks.snmp import SnmpChecker
from fao.schemas import ErrorKind, SnmpCheck

SYS_SERVICES = "1.3.6.1.2.1.1.7.0"  # the agent's default: 0
SYS_DESCR = "1.3.6.1.2.1.1.1.0"


@pytest.fixture(scope="module")
async def agent_port() -> AsyncIterator[int]:
    """A pysnmp command responder: community ``fao-community`` (v2c) and user ``fao-user`` (v3)."""
    snmp_engine = engine.SnmpEngine()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    config.add_transport(snmp_engine, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode(sock=sock))
    config.add_v1_system(snmp_engine, "area", "fao-community")
    config.add_v3_user(
        snmp_engine,
        "fao-user",
        config.USM_AUTH_HMAC96_SHA,
        "auth-key-1",
        config.USM_PRIV_CFB128_AES,
        "priv-key-1",
    )
    config.add_vacm_user(snmp_engine, 2, "area", "noAuthNoPriv", (1, 3, 6, 1, 2, 1))
    config.add_vacm_user(snmp_engine, 3, "fao-user", "authPriv", (1, 3, 6, 1, 2, 1))
    cmdrsp.GetCommandResponder(snmp_engine, context.SnmpContext(snmp_engine))
    yield sock.getsockname()[1]
    snmp_engine.close_dispatcher()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_TEST_COMMUNITY", "fao-community")
    monkeypatch.setenv("FAO_TEST_WRONG", "wrong-guess-1")
    monkeypatch.setenv("FAO_TEST_AUTH_KEY", "auth-key-1")
    monkeypatch.setenv("FAO_TEST_PRIV_KEY", "priv-key-1")


def _v2c(port: int, **fields: Any) -> SnmpCheck:
    base = {"host": "127.0.0.1", "port": port, "community_env": "FAO_TEST_COMMUNITY", "oid": SYS_SERVICES}
    return SnmpCheck.model_validate({**base, **fields})


def _v3(port: int, auth_key_env: str = "FAO_TEST_AUTH_KEY") -> SnmpCheck:
    user = {"name": "fao-user", "auth_protocol": "SHA", "auth_key_env": auth_key_env, "priv_protocol": "AES",
            "priv_key_env": "FAO_TEST_PRIV_KEY"}  # fmt: skip
    return SnmpCheck.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "version": "3",
            "v3_user": user,
            "oid": SYS_SERVICES,
            "expected": "0",
        }
    )


async def test_v2c_expected_value_and_range(agent_port: int) -> None:
    checker = SnmpChecker()
    try:
        exact = await checker.run(_v2c(agent_port, expected="0"), 3.0)
        assert exact.ok, exact.detail
        assert exact.observations is not None
        assert exact.observations.answer == "0"
        assert (await checker.run(_v2c(agent_port, min=0, max=10), 3.0)).ok
        wrong = await checker.run(_v2c(agent_port, expected="72"), 3.0)
        assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
        assert wrong.detail == f"{SYS_SERVICES} is '0', expected '72'"
        low = await checker.run(_v2c(agent_port, min=1), 3.0)
        assert low.error_kind is ErrorKind.UNEXPECTED_ANSWER
        assert low.detail == f"{SYS_SERVICES} is 0, below 1"
        text = await checker.run(_v2c(agent_port, oid=SYS_DESCR, max=5), 3.0)
        assert text.error_kind is ErrorKind.UNEXPECTED_ANSWER
        assert "not a number" in text.detail
    finally:
        await checker.aclose()


async def test_v2c_unknown_oid_is_protocol(agent_port: int) -> None:
    outcome = await SnmpChecker().run(_v2c(agent_port, oid="1.3.6.1.2.1.1.99.0"), 3.0)
    assert outcome.error_kind is ErrorKind.PROTOCOL
    assert "No Such" in outcome.detail


async def test_v2c_wrong_community_gets_no_answer(agent_port: int) -> None:
    outcome = await SnmpChecker().run(_v2c(agent_port, community_env="FAO_TEST_WRONG"), 0.5)
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.detail == "no answer within 0.5s"


async def test_v3_user_with_keys_is_up_and_a_wrong_key_is_auth(agent_port: int) -> None:
    """One checker, as in a prober: the same user name with other keys (another device) does not
    disturb the checks that use the right ones."""
    checker = SnmpChecker()
    try:
        outcome = await checker.run(_v3(agent_port), 3.0)
        assert outcome.ok, outcome.detail
        wrong = await checker.run(_v3(agent_port, auth_key_env="FAO_TEST_WRONG"), 3.0)
        assert wrong.error_kind is ErrorKind.AUTH, wrong.detail
        again = await checker.run(_v3(agent_port), 3.0)
        assert again.ok, again.detail
    finally:
        await checker.aclose()


async def test_unknown_host_name_is_dns() -> None:
    outcome = await SnmpChecker().run(SnmpCheck(host="nowhere.invalid", oid=SYS_SERVICES), 1.0)
    assert outcome.error_kind is ErrorKind.DNS
    assert outcome.detail.startswith("DNS lookup failed: "), outcome.detail
    assert "PySnmpError" not in outcome.detail


async def test_missing_secret_is_internal(agent_port: int) -> None:
    outcome = await SnmpChecker().run(_v2c(agent_port, community_env="FAO_TEST_NOT_SET"), 1.0)
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert "FAO_TEST_NOT_SET" in outcome.detail


def test_v3_needs_a_user_and_privacy_needs_authentication() -> None:
    with pytest.raises(ValueError, match="version 3 needs v3_user"):
        SnmpCheck.model_validate({"host": "h", "version": "3", "oid": SYS_SERVICES})
    with pytest.raises(ValueError, match="privacy"):
        SnmpCheck.model_validate(
            {"host": "h", "version": "3", "oid": SYS_SERVICES,
             "v3_user": {"name": "u", "priv_protocol": "AES", "priv_key_env": "K"}}
        )  # fmt: skip
