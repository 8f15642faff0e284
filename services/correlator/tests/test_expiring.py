"""A TLS certificate close to expiry: the check is up, with fewer than ``warn_days`` left; one minor
``expiring`` incident per monitor, resolved when the certificate is renewed. Below
``critical_days`` the check fails and that is an outage as usual."""

from __future__ import annotations

from datetime import timedelta

from services.correlator.tests.policy_sim import Sim, monitor, system

from fao.correlator.policy import on_result
from fao.schemas import CheckResult, ErrorKind, Observations

TLS = {"type": "tls", "host": "portal.example.go.th", "warn_days": 21, "critical_days": 7}


def tls_sim() -> Sim:
    return Sim([system("portal")], [monitor("portal-cert", "portal", check=TLS)])


def check(sim: Sim, days_left: float, ok: bool = True) -> None:
    observations = Observations(cert_days_left=days_left, cert_expires_at=sim.now + timedelta(days=days_left))
    result = CheckResult(
        monitor_id="portal-cert",
        system_id="portal",
        zone="default",
        prober_id="p1",
        started_at=sim.now,
        ok=ok,
        latency_ms=20.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.TLS,
        detail="" if ok else f"certificate expires in {days_left:.1f} days, under 7",
        observations=observations,
    )
    sim._apply(on_result(sim.world(), result, sim.now))
    sim.step(5)


def test_fewer_than_warn_days_is_one_minor_expiring_incident_until_renewed() -> None:
    sim = tls_sim()
    check(sim, 40)
    assert sim.sent() == []
    check(sim, 20.5)
    assert sim.sent() == [("opened", "portal", "expiring")]
    [warning] = sim.incidents.open()
    assert warning.severity == "minor"
    assert warning.title == "portal-cert: certificate expires in 20 days"
    assert "(20.5 days left, warning below 21)" in warning.cause
    check(sim, 20.4)
    assert len(sim.sent()) == 1, "still expiring: nothing more"
    check(sim, 90)
    assert sim.sent() == [("opened", "portal", "expiring"), ("resolved", "portal", "expiring")]


def test_under_critical_days_the_check_fails_and_is_an_outage() -> None:
    sim = tls_sim()
    check(sim, 10)
    for _ in range(2):
        check(sim, 5, ok=False)
    assert sim.sent() == [("opened", "portal", "expiring"), ("opened", "portal", "outage")]


def test_results_without_certificate_observations_change_nothing() -> None:
    sim = tls_sim()
    result = CheckResult(
        monitor_id="portal-cert", system_id="portal", zone="default", prober_id="p1",
        started_at=sim.now, ok=True, latency_ms=1.0,
    )  # fmt: skip
    sim._apply(on_result(sim.world(), result, sim.now))
    assert sim.sent() == []
    assert not sim.states["portal-cert"].expiring
