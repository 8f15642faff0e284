"""Channel name → channel. Adding a channel is one module in ``channels/`` plus one line in
``BUILTIN_CHANNELS``.

A factory gets the ``ChannelContext`` and returns the channel, or None when it is not configured
(e-mail without ``FAO_SMTP_HOST``): routing then skips that channel's targets with a log line.
``line`` is served by the LINE push (``channels.line``) when an access token is set, else by the
outbox (``channels.outbox``), exactly as before channels were plug-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.channels.contract import Channel
from fao.notifier.channels.email import EmailChannel
from fao.notifier.channels.line import LinePush
from fao.notifier.channels.monthly_limit import MonthlyLimit, PublishCommand
from fao.notifier.channels.outbox import OutboxChannel
from fao.notifier.channels.webhook import WebhookChannel
from fao.notifier.line_channel import Sender
from fao.notifier.notices import load_notices
from fao.notifier.outbox import Outbox
from fao.notifier.settings import NotifierSettings
from fao.runtime.store import Document

log = structlog.get_logger()


@dataclass(frozen=True)
class ChannelContext:
    """What a channel factory may use."""

    db: AsyncDatabase[Document]
    clock: Callable[[], datetime]
    settings: NotifierSettings
    line_sender: Sender | None
    """The LINE client (None: no access token, LINE messages go to the outbox)."""
    publish: PublishCommand | None = None
    """Publishes a ``Command`` (the monthly-limit platform incident); None: only logged."""


ChannelFactory = Callable[[ChannelContext], Channel | None]


def line_channel(
    db: AsyncDatabase[Document],
    sender: Sender | None,
    clock: Callable[[], datetime],
    *,
    timeout: float = 10.0,
    publish: PublishCommand | None = None,
    settings: NotifierSettings | None = None,
) -> Channel:
    """The LINE push with its monthly-limit guard, or the outbox without a sender."""
    if sender is None:
        return OutboxChannel(Outbox(db), clock)
    notices = load_notices(settings.language if settings is not None else "th")
    limit = MonthlyLimit(db, report=notices.quota_exhausted, publish=publish, clock=clock)
    return LinePush(sender, timeout=timeout, limit=limit)


def _line(ctx: ChannelContext) -> Channel:
    return line_channel(
        ctx.db,
        ctx.line_sender,
        ctx.clock,
        timeout=ctx.settings.line_timeout,
        publish=ctx.publish,
        settings=ctx.settings,
    )


def _email(ctx: ChannelContext) -> Channel | None:
    s = ctx.settings
    if not s.smtp_host:
        return None
    return EmailChannel(
        host=s.smtp_host,
        port=s.smtp_port,
        sender=s.smtp_from,
        clock=ctx.clock,
        username=s.smtp_username,
        password=s.smtp_password,
        starttls=s.smtp_starttls,
        timeout=s.smtp_timeout,
        ca_file=s.smtp_ca_file,
    )


def _webhook(ctx: ChannelContext) -> Channel:
    return WebhookChannel(clock=ctx.clock, timeout=ctx.settings.webhook_timeout)


BUILTIN_CHANNELS: Mapping[str, ChannelFactory] = MappingProxyType(
    {
        "line": _line,
        "email": _email,
        "webhook": _webhook,
    }
)
"""Every channel the notifier knows, by its name in ``ChannelPolicy`` and delivery records."""


class ChannelRegistry:
    """The configured channels of one notifier process."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self._channels = dict(channels)

    @classmethod
    def builtin(cls, ctx: ChannelContext) -> ChannelRegistry:
        """Every built-in channel that is configured (the others are logged once)."""
        channels: dict[str, Channel] = {}
        for name, factory in BUILTIN_CHANNELS.items():
            channel = factory(ctx)
            if channel is None:
                log.info("channel_not_configured", channel=name)
            else:
                channels[name] = channel
        return cls(channels)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._channels)

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    async def start(self) -> None:
        for channel in self._channels.values():
            await channel.start()

    async def stop(self) -> None:
        """Close every channel; one failing to close does not stop the others."""
        for name, channel in self._channels.items():
            try:
                await channel.stop()
            except Exception:  # shutdown is best effort, but not silent
                log.exception("channel_close_failed", channel=name)
