"""Run a Fao service as a real child process (``python -m fao.<service>``) for end-to-end tests.

A test can ``kill()`` it (SIGKILL: no clean shutdown, like a crashed container) and start it again.
Output goes to a log file so a failing test can show what the service said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fao.runtime.launch import free_port, terminate


class ServiceProcess:
    """One service child process with its own ``/healthz`` port."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path) -> None:
        self.service = service
        self.env = env
        self.log_path = log_dir / f"{service}.log"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        env = {
            **os.environ,
            **self.env,
            "FAO_HTTP_PORT": str(self.port),
            "FAO_HTTP_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",  # a SIGKILLed service must not take its last log lines with it
        }
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", f"fao.{self.service}"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise AssertionError(f"{self.service} exited with {self._proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.service} not healthy within {timeout}s:\n{self.output()}")

    @property
    def pid(self) -> int | None:
        """The current process's id (None before the first start)."""
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish what it was doing."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, timeout=15)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""
