"""The notifier's exception types: what a channel raises when it could not deliver.

Exception tree (everything a channel may raise)::

    Exception
     └── DeliveryError          a message could not be handed to a channel
           .permanent = True    the channel refused it and will refuse it again (bad target,
                                invalid message, revoked token): final ``failed_permanent``, the
                                team's fallback channels get the message at once
           .permanent = False   it may work later (429 rate limit, 5xx, timeout, connection
                                refused): retry (LINE: with the same retry key); after
                                ``ChannelPolicy.fallback_after`` failed tries the fallbacks get it too
           .target = True       (with permanent) the *target* is bad, not the message: an unknown
                                LINE group or one the bot was removed from (400 "Failed to send
                                messages"), a webhook URL that is gone (404, 410), an unknown
                                mailbox (SMTP 550/551/553): the target is marked broken
                                (``fao.notifier.broken``) and later deliveries skip it
           └── MonthlyLimitError
                                LINE's "You have reached your monthly limit." (429): not worth
                                retrying this month. ``until`` is when LINE is tried again (the
                                start of the next month, Bangkok time); ``fresh`` is True when LINE
                                itself answered so now, False when the notifier did not even try
                                because the limit was known to be reached
     └── QuotaUnavailableError  LINE gave no quota figure (``fao.notifier.quota``: unreachable,
                                timeout, an error answer); the quota watch keeps its last figures

Third-party errors (line-bot-sdk's ``ApiException``, aiohttp, aiosmtplib and timeout errors) are
translated into these at the channel boundary (``fao.notifier.channels``), so the workers decide
retry, fallback or give-up in one place.
"""

from __future__ import annotations

from datetime import datetime


class DeliveryError(Exception):
    """A channel failed to deliver; ``permanent`` says whether retrying could help, ``target``
    whether the target itself is unusable (see the module docstring)."""

    def __init__(
        self, message: str, *, permanent: bool, status: int | None = None, target: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.target = target and permanent

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, permanent={self.permanent}, "
            f"status={self.status}, target={self.target})"
        )


class MonthlyLimitError(DeliveryError):
    """LINE's monthly message limit is reached: no LINE push until ``until``."""

    def __init__(self, message: str, *, until: datetime, fresh: bool, status: int | None = None) -> None:
        super().__init__(message, permanent=True, status=status)
        self.until = until
        self.fresh = fresh


class QuotaUnavailableError(Exception):
    """LINE did not give a quota figure (unreachable, timeout, or an error answer)."""
