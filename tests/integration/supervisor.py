"""What a production supervisor does, for tests: restart a service process that exits, and ask its
/healthz. Also CPU accounting, to tell a process that waits from one that spins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fao.testing.processes import ServiceProcess

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SupervisedProcess(ServiceProcess):
    """A ``ServiceProcess`` that can also be started without waiting for it to be healthy (as a
    supervisor restarts a service while its servers are still away) and asked how it ended."""

    def spawn(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "FAO_HTTP_PORT": str(self.port),
            "FAO_HTTP_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", f"fao.{self.service}"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def send(self, sig: int) -> None:
        """Send ``sig`` to the current process (if any)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def returncode(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return None if self._proc is None else self._proc.poll()

    def cpu_seconds(self) -> float:
        """User + system CPU time the current process has used so far."""
        if self.pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def healthz(self, timeout: float = 1.0) -> int | None:
        """The /healthz status code, or None when nothing answers."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=timeout).status_code
        except httpx.HTTPError:
            return None


@dataclass
class Exit:
    service: str
    code: int
    at: float


@dataclass
class Supervisor:
    """Polls its processes; one that exited is logged in ``exits`` and started again after
    ``backoff`` seconds (doubling while it keeps exiting within ``stable`` seconds)."""

    processes: dict[str, SupervisedProcess]
    backoff: float = 0.5
    stable: float = 30.0
    exits: list[Exit] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        started = {name: time.monotonic() for name in self.processes}
        crashes = dict.fromkeys(self.processes, 0)
        due: dict[str, float] = {}
        while True:
            now = time.monotonic()
            for name, proc in self.processes.items():
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        proc.spawn()
                        started[name] = now
                    continue
                code = proc.returncode()
                if code is None:
                    continue
                self.exits.append(Exit(name, code, now))
                crashes[name] = 1 if now - started[name] >= self.stable else crashes[name] + 1
                due[name] = now + self.backoff * 2 ** (crashes[name] - 1)
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="test-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
