"""Check type → checker. Adding a type is one module in ``checks/`` plus one line in ``BUILTIN_CHECKERS``.

``CheckerRegistry.run`` is what the runner calls: it dispatches on ``spec.type`` and keeps the promise
that a check never raises, even if a checker breaks its contract (that becomes ``ErrorKind.INTERNAL``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import structlog

from fao.prober.checks.banners import SmtpChecker, SshChecker
from fao.prober.checks.browser import BrowserChecker
from fao.prober.checks.contract import Checker, Outcome, describe_exception
from fao.prober.checks.databases import MongoChecker, MysqlChecker, PostgresChecker, RedisChecker
from fao.prober.checks.dns import DnsChecker
from fao.prober.checks.http import HttpChecker
from fao.prober.checks.icmp import IcmpChecker
from fao.prober.checks.journey import JourneyChecker
from fao.prober.checks.snmp import SnmpChecker
from fao.prober.checks.tcp import TcpChecker
from fao.prober.checks.tls import TlsChecker
from fao.schemas import CheckSpec, ErrorKind

log = structlog.get_logger()

CheckerFactory = Callable[[], Checker[Any]]

BUILTIN_CHECKERS: Mapping[str, CheckerFactory] = MappingProxyType(
    {
        "http": HttpChecker,
        "tcp": TcpChecker,
        "dns": DnsChecker,
        "tls": TlsChecker,
        "icmp": IcmpChecker,
        "postgres": PostgresChecker,
        "mysql": MysqlChecker,
        "redis": RedisChecker,
        "mongodb": MongoChecker,
        "ssh": SshChecker,
        "snmp": SnmpChecker,
        "smtp": SmtpChecker,
        "journey": JourneyChecker,
        "browser": BrowserChecker,
    }
)
"""Every check type the prober runs, keyed by the spec's ``type`` discriminator (all but
``fao.schemas.PROBER_SKIPS``)."""


class CheckerRegistry:
    """The checkers of one prober process, one instance per check type."""

    def __init__(self, checkers: Mapping[str, Checker[Any]]) -> None:
        self._checkers = dict(checkers)

    @classmethod
    def builtin(cls) -> CheckerRegistry:
        """A registry with a fresh instance of every built-in checker."""
        return cls({check_type: factory() for check_type, factory in BUILTIN_CHECKERS.items()})

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._checkers)

    def get(self, check_type: str) -> Checker[Any] | None:
        return self._checkers.get(check_type)

    async def run(self, spec: CheckSpec, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        """Run ``spec`` with the checker of its type. Never raises (except ``CancelledError``)."""
        checker = self._checkers.get(spec.type)
        if checker is None:
            return Outcome.failure(ErrorKind.INTERNAL, f"no checker for check type {spec.type!r}", 0.0)
        try:
            return await checker.run(spec, timeout)
        except Exception as exc:  # a checker broke its contract; keep the prober running
            log.exception("checker_raised", check_type=spec.type)
            return Outcome.failure(ErrorKind.INTERNAL, describe_exception(exc), 0.0)

    async def aclose(self) -> None:
        """Close every checker; one failing to close does not stop the others."""
        for check_type, checker in self._checkers.items():
            try:
                await checker.aclose()
            except Exception:  # shutdown is best effort, but not silent
                log.exception("checker_close_failed", check_type=check_type)
