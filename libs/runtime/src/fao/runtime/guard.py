"""A watchdog thread that makes sure a service process always stops, even when its event loop cannot.

An asyncio signal handler runs *on the event loop*: a loop that is stuck (a library retrying a
failed call without ever yielding, as FastStream's pull loop did on a closed NATS connection) never
sees SIGTERM, and nothing else in the process can stop it. So ``fao.runtime.service.run`` installs
a ``ProcessGuard`` before anything else:

- SIGTERM and SIGINT are blocked in every thread and taken by this thread (``sigtimedwait``). The
  first one asks the service to stop (on its loop, thread-safely) and starts the grace period
  (``FAO_STOP_GRACE``); later ones change nothing;
- once a stop has begun (a signal, or the service stopping itself: lease lost, NATS connection
  closed for good), the process must be gone within the grace period: otherwise the guard logs
  ``stop_timeout`` and ends it with ``os._exit(1)``;
- the NATS connections the service registers are watched: one that is closed for good (or whose
  reconnecting gave up) must make the service stop; if no stop has begun ``CLOSED_LIMIT`` seconds
  later, the loop cannot react, and the guard exits the process with status 1 (the supervisor
  restarts it).

Child processes inherit the blocked signals; Fao services start none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time

import structlog
from nats.aio.client import Client as NatsClient

log = structlog.get_logger()

SIGNALS = {signal.SIGTERM, signal.SIGINT}
# How long a connection may be closed for good before a stop must have begun.
CLOSED_LIMIT = 5.0
POLL = 0.25


def connection_gave_up(nc: NatsClient) -> bool:
    """True when ``nc`` will never carry messages again: closed, or disconnected with its reconnect
    loop over (nats-py leaves a connection "connecting" for ever when its error callback raises,
    which FastStream's does for errors it deems unrecoverable, e.g. an authorization violation)."""
    if nc.is_closed:
        return True
    if nc.is_connected:
        return False
    task = nc._reconnection_task  # nats-py keeps no public handle on its reconnect loop
    return task is not None and task.done()


def block_stop_signals() -> None:
    """Block SIGTERM/SIGINT in the calling thread, so every thread started after inherits the
    block. A service's ``__main__`` calls it before importing anything else: a library can start
    native threads at import (numpy's OpenBLAS pool, under the reporter's charts), and a signal
    the kernel hands to such a thread would kill the process before the guard could see it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


class ProcessGuard:
    """See the module docstring. ``install`` from the main thread before any other thread starts."""

    def __init__(self, service: str = "fao", grace: float = 10.0) -> None:
        self.service = service
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._connections: list[NatsClient] = []
        self._deadline: float | None = None
        self._closed_since: float | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        block_stop_signals()
        self._thread = threading.Thread(target=self._run, name="fao-guard", daemon=True)
        self._thread.start()

    def attach(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """The loop and event that stop the service (from ``serve``)."""
        with self._lock:
            self._loop, self._stop = loop, stop

    def watch(self, connection: NatsClient) -> None:
        with self._lock:
            self._connections.append(connection)

    def stopping(self, reason: str) -> None:
        """The service began to stop (from its loop): the grace period runs from now, if not yet."""
        with self._lock:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.grace
                log.info("stop_deadline", service=self.service, reason=reason, grace_s=self.grace)

    def _request_stop(self) -> None:
        with self._lock:
            loop, stop = self._loop, self._stop
        if loop is None or stop is None:  # still building the service: nothing to stop cleanly
            self._exit(0, "stopped_before_start")
        else:
            # A loop already closed raises: the process is on its way out anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    def _exit(self, code: int, event: str, **fields: object) -> None:
        log.error(event, service=self.service, exit_code=code, **fields)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _run(self) -> None:
        while True:
            received = signal.sigtimedwait(SIGNALS, POLL)
            now = time.monotonic()
            # After SIGSTOP/SIGCONT (Ctrl-Z and fg, a paused process) CPython 3.11 returns a siginfo
            # whose fields are garbage (measured): no signal of ours, nothing to do.
            if received is not None and received.si_signo in SIGNALS:
                name = signal.Signals(received.si_signo).name
                log.info("signal_received", service=self.service, signal=name)
                # A later signal changes nothing: Ctrl-C under `fao dev up` reaches the service
                # and then `dev up`'s own SIGTERM does; both mean "stop within the grace period".
                if self._deadline is None:
                    self.stopping(name)
                    self._request_stop()
            deadline = self._deadline
            if deadline is not None:
                if now > deadline:
                    self._exit(1, "stop_timeout", grace_s=self.grace)
                continue
            self._check_connections(now)

    def _check_connections(self, now: float) -> None:
        with self._lock:
            connections = list(self._connections)
        if not any(connection_gave_up(nc) for nc in connections):
            self._closed_since = None
            return
        if self._closed_since is None:
            self._closed_since = now
        elif now - self._closed_since > CLOSED_LIMIT:
            self._exit(
                1,
                "nats_connection_closed",
                reason="closed for good and the service did not stop (loop stuck)",
            )
