"""The outbox channel plug-in: without a LINE access token (``fao dev up``) messages are kept in
the ``outbox`` collection (``fao.notifier.outbox``) instead of pushed; the delivery's status is
then ``outbox``. Idempotent: the delivery id is the outbox document's ``_id``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from fao.notifier.channels.contract import Outgoing, Receipt
from fao.notifier.outbox import OUTBOX, Outbox

NAME: Final = OUTBOX


class OutboxChannel:
    """``Channel`` that stores the message in ``outbox``."""

    name: Final = NAME
    idempotent: Final = True
    timeout: Final = 10.0

    def __init__(self, outbox: Outbox, clock: Callable[[], datetime]) -> None:
        self._outbox = outbox
        self._clock = clock

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, target: str, message: Outgoing, key: str) -> Receipt:
        await self._outbox.put(
            message.delivery_id,
            target=target,
            incident_id=message.incident_id,
            event_type=message.event_type,
            message=message.message,
            now=self._clock(),
        )
        return Receipt(request_id=message.delivery_id)
