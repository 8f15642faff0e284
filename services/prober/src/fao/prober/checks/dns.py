"""DNS checks with dnspython's asyncio resolver: one query to the chosen resolver (or the machine's).

=====================================  ======================
outcome                                ErrorKind
=====================================  ======================
no answer within the timeout           ``TIMEOUT``
NXDOMAIN, no answer of that type,       ``DNS``
SERVFAIL/REFUSED from every server
TCP resolver refuses the connection    ``CONNECTION_REFUSED``
answers, but not the expected ones     ``UNEXPECTED_ANSWER``
=====================================  ======================
"""

from __future__ import annotations

import re
import time

import dns.asyncresolver
import dns.exception
import dns.resolver

from fao.prober.checks.contract import Outcome, describe_exception, elapsed_ms
from fao.schemas import DnsCheck, ErrorKind, Observations


class DnsChecker:
    """Runs ``DnsCheck`` specs. Holds no resources: each check builds its own resolver."""

    async def run(self, spec: DnsCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        resolver = dns.asyncresolver.Resolver(configure=spec.resolver is None)
        if spec.resolver is not None:
            resolver.nameservers = [spec.resolver]
            resolver.port = spec.resolver_port
        resolver.lifetime = timeout
        resolver.timeout = timeout
        try:
            answer = await resolver.resolve(
                spec.name, spec.record_type, tcp=spec.protocol == "tcp", raise_on_no_answer=True
            )
        except dns.exception.Timeout:
            return Outcome.failure(ErrorKind.TIMEOUT, f"timed out after {timeout:g}s", elapsed_ms(started))
        except dns.resolver.NXDOMAIN:
            return Outcome.failure(
                ErrorKind.DNS, f"{spec.name}: no such name (NXDOMAIN)", elapsed_ms(started)
            )
        except dns.resolver.NoAnswer:
            return Outcome.failure(
                ErrorKind.DNS, f"{spec.name}: no {spec.record_type} record", elapsed_ms(started)
            )
        except dns.resolver.NoNameservers as exc:
            kind, detail = _no_nameservers(exc)
            return Outcome.failure(kind, detail, elapsed_ms(started))
        except (dns.exception.DNSException, OSError) as exc:
            return Outcome.failure(ErrorKind.DNS, describe_exception(exc), elapsed_ms(started))
        latency = elapsed_ms(started)
        values = sorted(rdata.to_text() for rdata in answer)
        observations = Observations(dns_ms=latency, answer=", ".join(values)[:500])
        problem = _answer_problem(spec, values)
        if problem is not None:
            return Outcome.failure(ErrorKind.UNEXPECTED_ANSWER, problem, latency, observations=observations)
        return Outcome.success(latency, observations=observations)

    async def aclose(self) -> None:
        return None


def _normalise(value: str) -> str:
    """Names compare without case or the final dot; TXT without its quotes."""
    return value.strip('"').rstrip(".").lower()


def _answer_problem(spec: DnsCheck, values: list[str]) -> str | None:
    got = ", ".join(values)
    if spec.expected:
        have = {_normalise(v) for v in values}
        missing = [e for e in spec.expected if _normalise(e) not in have]
        if missing:
            return f"{spec.record_type} {spec.name}: expected {', '.join(missing)}, got {got}"
    if spec.pattern is not None and not any(re.search(spec.pattern, v) for v in values):
        return f"{spec.record_type} {spec.name}: no answer matches {spec.pattern!r}, got {got}"
    return None


def _no_nameservers(exc: dns.resolver.NoNameservers) -> tuple[ErrorKind, str]:
    """Every server failed: refused connections (TCP) are ``CONNECTION_REFUSED``, the rest ``DNS``."""
    errors = [error[3] for error in exc.kwargs.get("errors") or [] if len(error) > 3]
    if errors and all(isinstance(error, ConnectionRefusedError) for error in errors):
        return ErrorKind.CONNECTION_REFUSED, "connection refused by the resolver"
    reasons = sorted({str(error) for error in errors})
    return ErrorKind.DNS, "no server answered" + (f": {'; '.join(reasons)}" if reasons else "")
