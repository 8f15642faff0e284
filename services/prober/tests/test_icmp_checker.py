"""The ICMP checker: ping 127.0.0.1, a name that does not resolve, and a host that forbids ICMP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fao.prober.checks.icmp import FORBIDDEN, IcmpChecker
from fao.schemas import ErrorKind, IcmpCheck


async def test_loopback_answers() -> None:
    outcome = await IcmpChecker().run(IcmpCheck(host="127.0.0.1", count=2, interval=0.05), 2.0)
    assert outcome.ok, outcome.detail
    seen = outcome.observations
    assert seen is not None
    assert (seen.packets_sent, seen.packets_received) == (2, 2)
    assert seen.rtt_ms is not None


async def test_unknown_name_is_dns() -> None:
    outcome = await IcmpChecker().run(IcmpCheck(host="nowhere.invalid", count=1), 2.0)
    assert outcome.error_kind is ErrorKind.DNS


_NETNS_SETUP = (
    # a private network namespace: 127.0.0.1 on lo; 127.0.0.2 routed into a TUN device nobody
    # reads (echo requests leave and are never answered); 127.0.0.3 unreachable (sends fail)
    "ip link set lo up && ip tuntap add fao-t0 mode tun && ip link set fao-t0 up"
    " && ip route del local 127.0.0.0/8 dev lo table local"
    " && ip route add 127.0.0.2/32 dev fao-t0 && ip route add unreachable 127.0.0.3/32"
)
_NETNS_CHECKS = (
    "import asyncio\n"
    "from fao.prober.checks.icmp import IcmpChecker\n"
    "from fao.schemas import IcmpCheck\n"
    "for host in ('127.0.0.1', '127.0.0.2', '127.0.0.3'):\n"
    "    o = asyncio.run(IcmpChecker().run(IcmpCheck(host=host, count=2, interval=0.05), 0.5))\n"
    "    print(o.error_kind.value, o.detail, sep='|')\n"
)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None
    or not os.path.exists("/dev/net/tun"),
    reason="needs root, unshare, ip (iproute2) and /dev/net/tun for a private network namespace",
)  # fmt: skip
def test_unanswered_echoes_time_out_and_unsendable_ones_are_connection_errors() -> None:
    """In a network namespace of its own (no traffic leaves it): an address whose echoes are lost
    is TIMEOUT, one the prober has no route to is CONNECTION_ERROR, 127.0.0.1 still answers."""
    done = subprocess.run(
        ["unshare", "--net", "sh", "-ec", f'{_NETNS_SETUP}; exec "$0" -c "$1"', sys.executable, _NETNS_CHECKS],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "none|",
        "timeout|0 of 2 echo requests answered (need 1)",
        "connection_error|none of the 2 echo requests could be sent to 127.0.0.3: no route to it from this prober",
    ]


def _group_may_ping(gid: int) -> bool:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    return low <= gid <= high


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and setpriv (util-linux) to run a process without CAP_NET_RAW",
)
def test_forbidden_icmp_names_the_sysctl() -> None:
    """Run without CAP_NET_RAW (no raw sockets): when the sysctl leaves our group out, the detail
    names the sysctl to set; when it lets the group in, the ping succeeds."""
    code = (
        "import asyncio\n"
        "from fao.prober.checks.icmp import IcmpChecker\n"
        "from fao.schemas import IcmpCheck\n"
        "o = asyncio.run(IcmpChecker().run(IcmpCheck(host='127.0.0.1', count=1), 2.0))\n"
        "print(o.error_kind.value); print(o.detail)\n"
    )
    done = subprocess.run(
        ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kind, detail = done.stdout.splitlines()[:2]
    if _group_may_ping(os.getegid()):
        assert kind == "none"
    else:
        assert kind == "internal"
        assert detail == FORBIDDEN
