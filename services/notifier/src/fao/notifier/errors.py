"""The notifier's one exception type.

Exception tree (everything a channel may raise)::

    Exception
     └── DeliveryError          a message could not be handed to a channel
           .permanent = True    the channel refused it and will refuse it again (bad target,
                                invalid message, revoked token): record ``failed_permanent``, do
                                not retry
           .permanent = False   it may work later (429, 5xx, timeout, connection refused): retry
                                with the same retry key

Third-party errors (line-bot-sdk's ``ApiException``, aiohttp and timeout errors) are translated
into ``DeliveryError`` at the channel boundary (``line_channel``), so the dispatcher decides retry
or give-up in one place.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A channel failed to deliver; ``permanent`` says whether retrying could help."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status

    def __repr__(self) -> str:
        return f"DeliveryError({self.message!r}, permanent={self.permanent}, status={self.status})"
