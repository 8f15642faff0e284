"""ICMP echo (ping) checks with icmplib.

Unprivileged ICMP sockets first (what a prober running as an ordinary user gets when its group is
inside ``net.ipv4.ping_group_range``); when the host forbids them and the process may open raw
sockets (root or CAP_NET_RAW), raw sockets. When neither is allowed the check fails with
``INTERNAL`` — the prober's host is set up wrongly, not the target — naming the sysctl to set.

=====================================  ======================
outcome                                ErrorKind
=====================================  ======================
fewer than ``min_replies`` replies     ``TIMEOUT``
no echo request could be sent (no      ``CONNECTION_ERROR``
route to the host from this prober)
name does not resolve                  ``DNS``
ICMP sockets forbidden on this host    ``INTERNAL``
=====================================  ======================
"""

from __future__ import annotations

import asyncio
import time

import icmplib

from fao.prober.checks.contract import Outcome, describe_exception, elapsed_ms
from fao.schemas import ErrorKind, IcmpCheck, Observations

FORBIDDEN = (
    "ICMP sockets are not allowed for this prober's user: set the sysctl "
    "net.ipv4.ping_group_range to include its group (e.g. sysctl -w net.ipv4.ping_group_range='0 2147483647')"
)


class IcmpChecker:
    """Runs ``IcmpCheck`` specs. Remembers whether unprivileged sockets are forbidden here."""

    def __init__(self) -> None:
        self._privileged = False

    async def run(self, spec: IcmpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        reply_wait = max(0.05, timeout - (spec.count - 1) * spec.interval)
        try:
            async with asyncio.timeout(timeout + 0.5):
                host = await self._ping(spec, reply_wait)
        except icmplib.SocketPermissionError:
            return Outcome.failure(ErrorKind.INTERNAL, FORBIDDEN, elapsed_ms(started))
        except icmplib.NameLookupError:
            return Outcome.failure(ErrorKind.DNS, f"DNS lookup failed for {spec.host}", elapsed_ms(started))
        except TimeoutError:
            return Outcome.failure(ErrorKind.TIMEOUT, f"timed out after {timeout:g}s", elapsed_ms(started))
        except (icmplib.ICMPLibError, OSError) as exc:
            return Outcome.failure(ErrorKind.CONNECTION_ERROR, describe_exception(exc), elapsed_ms(started))
        latency = elapsed_ms(started)
        observations = Observations(
            packets_sent=host.packets_sent,
            packets_received=host.packets_received,
            rtt_ms=round(host.avg_rtt, 3) if host.packets_received else None,
        )
        if host.packets_sent == 0:  # icmplib drops each send's error: the host has no route to it
            return Outcome.failure(
                ErrorKind.CONNECTION_ERROR,
                f"none of the {spec.count} echo requests could be sent to {host.address}:"
                " no route to it from this prober",
                latency,
                observations=observations,
            )
        if host.packets_received < spec.min_replies:
            return Outcome.failure(
                ErrorKind.TIMEOUT,
                f"{host.packets_received} of {host.packets_sent} echo requests answered (need {spec.min_replies})",
                latency,
                observations=observations,
            )
        return Outcome.success(latency, observations=observations)

    async def _ping(self, spec: IcmpCheck, reply_wait: float) -> icmplib.Host:
        async def ping(privileged: bool) -> icmplib.Host:
            return await icmplib.async_ping(
                spec.host, count=spec.count, interval=spec.interval, timeout=reply_wait, privileged=privileged
            )

        if not self._privileged:
            try:
                return await ping(False)
            except icmplib.SocketPermissionError:
                host = await ping(True)  # raises SocketPermissionError again without CAP_NET_RAW
                self._privileged = True
                return host
        return await ping(True)

    async def aclose(self) -> None:
        return None
