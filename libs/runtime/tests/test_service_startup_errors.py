"""A service that cannot start as configured says why in one line and exits 1, no traceback
(``fao.runtime.service.StartupError``): its ``/healthz`` port is taken, or NATS refuses its user.
Was: an ``OSError`` / ``nats.errors.Error`` traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from fao.runtime.auth import USERS
from fao.runtime.launch import free_port, start_nats


def _prober(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fao.prober"],
        env={**os.environ, "FAO_LOG_FORMAT": "console", "FAO_ZONE": "dc1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_taken_healthz_port_is_named_in_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # NATS unreachable: the prober starts /healthz while it waits for it, on the taken port
        done = _prober({"FAO_NATS_URL": f"nats://127.0.0.1:{free_port()}", "FAO_HTTP_PORT": str(port)})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert f"cannot serve /healthz on 127.0.0.1:{port} (Address already in use)" in output
    assert "set FAO_HTTP_PORT to a free port" in output


def test_nats_refusing_the_user_is_named_in_one_line_and_exit_1(tmp_path: Path) -> None:
    passwords = {user: f"right-{user}" for user in USERS}
    server = start_nats(tmp_path / "nats", users=passwords)
    try:
        done = _prober(
            {
                "FAO_NATS_URL": server.url,
                "FAO_NATS_USER": "prober",
                "FAO_NATS_PASSWORD": "wrong-password",
                "FAO_NATS_MANAGE_STREAMS": "false",
                "FAO_HTTP_PORT": "-1",
            }
        )
    finally:
        server.stop()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert "refused the connection (nats: 'Authorization Violation'); check FAO_NATS_USER" in output
    assert "wrong-password" not in output


def test_an_unreachable_mongodb_is_logged_without_pymongos_topology_dump() -> None:
    """``mongo_unavailable`` says what failed (was ≈700 characters of configured timeouts and
    topology description per attempt)."""
    closed = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fao.correlator"],
        env={
            **os.environ, "FAO_LOG_FORMAT": "json", "FAO_HTTP_PORT": "-1", "FAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "FAO_MONGO_URL": f"mongodb://127.0.0.1:{closed}/?directConnection=true&serverSelectionTimeoutMS=300",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = next(line for line in proc.stdout if "mongo_unavailable" in line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    error = json.loads(line)["error"]
    assert error == f"127.0.0.1:{closed}: [Errno 111] Connect call failed ('127.0.0.1', {closed})", error
