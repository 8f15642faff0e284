"""`fao dev up` (what `make up` runs) brings the whole system up and shows an alert for the demo outage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fao.runtime.launch import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


def test_dev_up_runs_everything_and_the_demo_outage_reaches_the_outbox(tmp_path: Path) -> None:
    demo_port = free_port()
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    monitors = config / "monitors.yaml"
    monitors.write_text(monitors.read_text().replace("18080", str(demo_port)))
    first_http = free_port()
    args = [
        sys.executable, "-m", "fao.cli", "dev", "up", "--config", str(config), "--data", str(tmp_path / "data"),
        "--nats-port", str(free_port()), "--mongo-port", str(free_port()), "--http-port", str(first_http),
        "--demo-port", str(demo_port), "--demo-period", "16", "--demo-outage", "8",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAO_LINE_")}
    proc = subprocess.Popen(
        args,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("outbox_message" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        output = "".join(lines)
        assert "fao: applied" in output, output
        for service in ("correlator", "notifier", "reporter", "prober"):
            assert f"fao: {service} health http://127.0.0.1:" in output
        alert = next((line for line in lines if "outbox_message" in line), None)
        assert alert is not None, f"no alert reached the outbox within 90 s:\n{output}"
        assert "[notifier  ]" in alert
        assert "ระบบบริการอิเล็กทรอนิกส์" in alert, "the alert names the system in Thai"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        reader.join(timeout=5)
    assert code == 0, "".join(lines)
    assert "fao: stopped" in "".join(lines)
