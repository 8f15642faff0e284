"""Results are read tolerantly: newer observation fields and error kinds never break a reader."""

from __future__ import annotations

from typing import Any

import pytest

from fao.schemas import CheckResult, ErrorKind, Monitor, Observations

BASE: dict[str, Any] = {
    "monitor_id": "web",
    "system_id": "portal",
    "zone": "dc1",
    "prober_id": "p1",
    "started_at": "2026-11-29T03:00:00Z",
    "ok": False,
    "latency_ms": 12.5,
}


def test_unknown_observation_fields_are_ignored_and_known_ones_typed() -> None:
    result = CheckResult.model_validate(
        BASE | {"observations": {"tls_ms": 3, "cert_expires_at": "2026-12-04T00:00:00Z", "quic_ms": 1.0}}
    )
    assert result.observations == Observations.model_validate(
        {"tls_ms": 3.0, "cert_expires_at": "2026-12-04T00:00:00Z"}
    )
    assert not hasattr(result.observations, "quic_ms")


def test_an_error_kind_from_a_newer_prober_reads_as_internal() -> None:
    assert (
        CheckResult.model_validate(BASE | {"error_kind": "quantum_decoherence"}).error_kind
        is ErrorKind.INTERNAL
    )
    assert CheckResult.model_validate(BASE | {"error_kind": "auth"}).error_kind is ErrorKind.AUTH


def test_a_result_without_observations_is_still_valid() -> None:
    assert CheckResult.model_validate(BASE).observations is None


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            {"type": "http", "url": "http://h/", "headers": {"Authorization": "Basic eA=="}},
            "no Authorization header",
        ),
        ({"type": "postgres", "host": "db", "password_env": "the password"}, "pattern"),
        ({"type": "push", "token_sha256": "abc"}, "fao push-token"),
        ({"type": "tls", "host": "h", "warn_days": 3, "critical_days": 7}, "critical_days"),
        ({"type": "icmp", "host": "h", "count": 2, "min_replies": 3}, "min_replies"),
        ({"type": "redis", "host": "h", "command": []}, "at least 1"),
        ({"type": "mongodb", "host": "h", "expected": "1"}, "expected needs a field"),
        ({"type": "mysql", "host": "h", "expected": "1"}, "expected needs a query"),
        ({"type": "snmp", "host": "h", "oid": "1.3.6", "expected": "1", "min": 0}, "not both"),
        ({"type": "ssh", "host": "h", "fingerprint": "MD5:aa"}, "pattern"),
    ],
)
def test_bad_check_settings_are_config_errors(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Monitor.model_validate({"id": "m", "system": "s", "check": check})


def test_a_push_monitor_has_one_zone() -> None:
    push = {"type": "push", "token_sha256": "0" * 64}
    with pytest.raises(ValueError, match="a push monitor has one zone"):
        Monitor.model_validate({"id": "m", "system": "s", "check": push, "zones": ["dc1", "dr"]})
    assert Monitor.model_validate({"id": "m", "system": "s", "check": push}).check.target_host == "push"
