"""`fao dev up` (what `make up` runs): the whole system on loopback, probers per zone, the demo outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fao.cli.demo_target import DemoTarget
from fao.runtime.launch import free_port
from fao.schemas.loader import load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


class DevUp:
    """A running `fao dev up` child process whose output is collected line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True
        )
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def logged(self, prefix: str, text: str) -> Callable[[], bool]:
        """A condition: a line starting with ``prefix`` and containing ``text`` was printed."""
        return lambda: any(line.startswith(prefix) and text in line for line in self.lines)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until it holds; fail if ``dev up`` exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"dev up exited before {what}:\n{self.output}"
            assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}\n{self.output}"
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=5)
        return code


# /healthz ports `fao dev up` takes from --http-port on: correlator, notifier, reporter, two probers, gateway.
SERVICE_PORTS = 6


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now, below the kernel's
    ephemeral range (32768 and up here), where a client connection of another test cannot take one
    of them between this check and ``fao dev up`` binding it (``free_port`` checks one port only,
    and inside that range)."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 32000 - count)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports found")


@contextmanager
def dev_up(tmp_path: Path, config: Path, first_http: int, *extra: str) -> Iterator[DevUp]:
    args = [
        sys.executable, "-m", "fao.cli", "dev", "up", "--config", str(config), "--data", str(tmp_path / "data"),
        "--nats-port", str(free_port()), "--mongo-port", str(free_port()), "--http-port", str(first_http),
        "--gateway-port", str(free_port()), *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAO_LINE_")}
    proc = subprocess.Popen(
        args,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = DevUp(proc)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output
    assert "fao: stopped" in running.output


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_up_runs_everything_and_the_demo_outage_reaches_the_outbox(tmp_path: Path) -> None:
    demo_port = free_port()
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    for path in config.glob("*.yaml"):
        path.write_text(path.read_text().replace("18080", str(demo_port)))
    names_th = {system.display_name_th for system in load_inventory(config).systems}
    first_http = free_port_block(SERVICE_PORTS)
    demo = ("--demo-port", str(demo_port), "--demo-period", "16", "--demo-outage", "8")
    with dev_up(tmp_path, config, first_http, *demo) as fao:

        def outage_alerts() -> list[str]:
            """Outbox lines naming a demo system in Thai (the platform team may get a zone problem too;
            the quarterly owner review, sent at start, names the systems too but is no alert)."""
            return [
                line
                for line in fao.lines
                if "outbox_message" in line and "review" not in line and any(n in line for n in names_th)
            ]

        fao.wait_for(lambda: bool(outage_alerts()), 90, "an alert for the demo outage in the outbox")
        output = fao.output
        assert "fao: applied" in output
        assert f"fao: demo target http://127.0.0.1:{demo_port}/" in output
        assert "fao: warning: no monitor" not in output, "the copied config checks the demo's port"
        labels = ["correlator", "notifier", "reporter", "prober/dc1", "prober/dr", "gateway"]
        for offset, label in enumerate(labels):
            assert f"fao: {label} health http://127.0.0.1:{first_http + offset}/healthz" in output
        assert outage_alerts()[0].startswith("[notifier  ]")
        assert "fao: gateway LINE webhook http://127.0.0.1:" in output
        fao.wait_for(lambda: healthy(first_http + 5), 30, "the gateway's /healthz (own NATS user)")
        see_the_alert_in_the_dashboard(fao.output, names_th)


def see_the_alert_in_the_dashboard(output: str, names_th: set[str]) -> None:
    """What a new user does after `make up`: open the printed dashboard URL, sign in as the first
    admin with the printed password, and find the alert in the outbox page."""
    import httpx

    dashboard = re.search(r"fao: dashboard (http://127\.0\.0\.1:\d+/)", output)
    admin = re.search(r"fao: created dashboard user 'admin' with password (\S+) ", output)
    assert dashboard, output
    assert admin, output
    with httpx.Client(base_url=dashboard.group(1), follow_redirects=True) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        signed = client.post(
            "/login", data={"username": "admin", "password": admin.group(1), "csrf": csrf.group(1)}
        )
        assert signed.status_code == 200
        assert 'id="who">admin<' in signed.text
        outbox = client.get("/outbox").text
        assert any(name in outbox for name in names_th), outbox[:2000]


def site_inventory(tmp_path: Path, port: int, zones: str = "[default]") -> Path:
    """A one-monitor inventory (a TCP check of ``port``) in ``tmp_path/config``."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(
        f"""
teams:
  - {{id: ops, name: Ops}}
systems:
  - {{id: site, name: Site, team: ops}}
monitors:
  - id: site-tcp
    system: site
    check: {{type: tcp, host: 127.0.0.1, port: {port}}}
    interval: 5s
    timeout: 1s
    zones: {zones}
""",
        encoding="utf-8",
    )
    return config


def test_dev_up_no_demo_starts_one_prober_per_zone_and_no_demo_target(tmp_path: Path) -> None:
    first_http = free_port_block(SERVICE_PORTS)
    config = site_inventory(tmp_path, first_http, zones="[west, east]")
    demo_port = free_port()
    with dev_up(tmp_path, config, first_http, "--no-demo", "--demo-port", str(demo_port)) as fao:
        for zone in ("east", "west"):
            fao.wait_for(fao.logged(f"[prober/{zone}", "prober_ready"), 60, f"prober/{zone} ready")
        # Zones sorted: east, then west, after correlator, notifier and reporter.
        for offset, label in enumerate(["correlator", "notifier", "reporter", "prober/east", "prober/west"]):
            assert f"fao: {label} health http://127.0.0.1:{first_http + offset}/healthz" in fao.output
        fao.wait_for(
            lambda: healthy(first_http + 3) and healthy(first_http + 4), 30, "both probers' /healthz"
        )
        prober_lines = [line for line in fao.lines if line.startswith("fao: prober")]
        assert len(prober_lines) == 2, prober_lines
        for zone in ("east", "west"):
            assert fao.logged(f"[prober/{zone}", f"dev-{zone}")(), "each prober has its own FAO_PROBER_ID"
        assert not [line for line in fao.lines if line.startswith("fao: demo")]
        assert not listening(demo_port), "no demo target with --no-demo"
        # NATS runs with authorization; each service has its own user; no password is printed.
        users = tmp_path / "data" / "nats-users.json"
        assert stat.S_IMODE(users.stat().st_mode) == 0o600
        assert "authorization on" in fao.output
        for password in json.loads(users.read_text()).values():
            assert password not in fao.output
        for label in ("correlator", "notifier", "reporter", "prober/east"):
            fao.wait_for(fao.logged(f"[{label}", "service_started"), 30, f"{label} started with its own user")


def test_a_demo_port_no_monitor_checks_is_noticed(tmp_path: Path) -> None:
    """`--demo-port` moves the demo target, not the example monitors (they check 18080): dev up
    warns instead of showing monitors that stay down for good."""
    from fao.cli.dev import probes_demo

    examples = load_inventory(EXAMPLES)
    assert probes_demo(examples, 18080)
    assert not probes_demo(examples, 18081)
    site = load_inventory(site_inventory(tmp_path, 18081))
    assert probes_demo(site, 18081), "a tcp check of the port counts"


def test_a_port_option_out_of_range_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Was: `--nats-port -5` "nats-server exited with code 1 before listening"; `--http-port 70000`
    every service crash-looping with an OverflowError traceback."""
    from typer.testing import CliRunner

    from fao.cli.main import app

    for option, value in (("--nats-port", "-5"), ("--mongo-port", "70000"), ("--http-port", "70000"),
                          ("--gateway-port", "-1"), ("--demo-port", "0")):  # fmt: skip
        result = CliRunner().invoke(app, ["dev", "up", "--data", str(tmp_path / "data"), option, value])
        assert result.exit_code == 2, (option, result.output)
        assert f"Invalid value for '{option}'" in result.output, result.output
    assert not (tmp_path / "data").exists(), "nothing was started"


def test_a_nats_or_mongo_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Another server on --nats-port was taken for ours (and refused our users: an
    ApplyRefusedError traceback); one on --mongo-port likewise. Now refused before starting."""
    config = site_inventory(tmp_path, free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option, what in (("--nats-port", "nats-server"), ("--mongo-port", "FerretDB")):
            ports = {"--nats-port": str(free_port()), "--mongo-port": str(free_port()), option: str(port)}
            done = subprocess.run(
                [sys.executable, "-m", "fao.cli", "dev", "up", "--no-demo", "--data", str(tmp_path / "data"),
                 "--config", str(config), *(x for kv in ports.items() for x in kv),
                 "--http-port", str(free_port_block(SERVICE_PORTS)), "--gateway-port", str(free_port())],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 1, done.stdout + done.stderr
            assert "Traceback" not in done.stdout + done.stderr
            assert f"{what}: 127.0.0.1:{port} is already in use by another process" in done.stderr
            assert "fao: started" not in done.stdout


async def test_demo_target_stops_listening_during_its_outage() -> None:
    """Down means unreachable, like a switch outage: TCP and HTTP checks of it fail together."""
    port = free_port()
    demo = DemoTarget("127.0.0.1", port, period=1.0, outage=0.5)
    await demo.start()
    try:
        for expected in (False, True):
            deadline = time.monotonic() + 5
            while await asyncio.to_thread(listening, port) is not expected:
                assert time.monotonic() < deadline, f"listening never became {expected}"
                await asyncio.sleep(0.02)
    finally:
        await demo.stop()
    assert not listening(port)
