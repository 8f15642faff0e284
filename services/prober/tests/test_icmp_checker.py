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
