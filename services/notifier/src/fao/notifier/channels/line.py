"""The LINE channel plug-in: a push per delivery through ``line_channel.LineChannel`` (or any
``Sender``), guarded by the monthly limit.

Idempotent: every try of a delivery carries its ``X-Line-Retry-Key`` (the ``key``), so LINE takes
the message once and answers 409 to a repeat. While LINE's monthly limit is known to be reached
no push is attempted (``MonthlyLimitError``, not fresh); LINE answering "monthly limit" is
recorded (``MonthlyLimit.reached``) before the error goes on to the workers, which fall back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from fao.notifier.channels.contract import Outgoing, Receipt
from fao.notifier.channels.monthly_limit import MonthlyLimit
from fao.notifier.errors import MonthlyLimitError
from fao.notifier.line_channel import LineChannel, Sender

NAME: Final = "line"


class LinePush:
    """``Channel`` over a LINE ``Sender``; ``limit`` None: no monthly-limit bookkeeping."""

    name: Final = NAME
    idempotent: Final = True

    def __init__(self, sender: Sender, *, timeout: float = 10.0, limit: MonthlyLimit | None = None) -> None:
        self._sender = sender
        self._limit = limit
        self.timeout = timeout

    async def start(self) -> None:
        if isinstance(self._sender, LineChannel):
            await self._sender.start()
        if self._limit is not None:
            await self._limit.load()

    async def stop(self) -> None:
        if isinstance(self._sender, LineChannel):
            await self._sender.stop()

    def exhausted(self, now: datetime) -> bool:
        """LINE's monthly limit is known to be reached: nothing will be pushed until it renews."""
        return self._limit is not None and self._limit.known_until(now) is not None

    async def send(self, target: str, message: Outgoing, key: str) -> Receipt:
        if self._limit is not None:
            await self._limit.check()
        try:
            return await self._sender.send(target, [message.message], key)
        except MonthlyLimitError as exc:
            if self._limit is not None and exc.fresh:
                await self._limit.reached(exc)
            raise
