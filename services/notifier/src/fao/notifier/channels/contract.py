"""What every channel promises: ``send(target, message, key) -> Receipt`` or ``DeliveryError``.

A channel makes exactly one attempt per call; retrying, falling back and claiming are the
workers' job (``fao.notifier.workers``). It translates its library's exceptions into
``DeliveryError`` (``permanent``, ``target``) or ``MonthlyLimitError`` at this boundary.

``idempotent`` says whether the channel itself drops a repeated send of the same ``key``: LINE
does (``X-Line-Retry-Key``: a repeat within 24 h answers 409), and so does the outbox (the key is
its ``_id``). E-mail and webhooks do not: a second send is a second e-mail, so the workers take an
exclusive claim before each of their attempts (``fao.notifier.claims``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fao.notifier.render import RenderedMessage


@dataclass(frozen=True)
class Receipt:
    """What the channel said when it took the message."""

    request_id: str | None
    """The channel's id of the request (LINE ``x-line-request-id``, the e-mail Message-ID, …)."""
    sent_message_ids: tuple[str, ...] = ()
    already_accepted: bool = False
    """The channel had accepted this key before (LINE 409): the message exists once, from then."""
    accepted_request_id: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """One delivery's message and what a channel may tell about it besides the message itself."""

    delivery_id: str
    event_id: str
    event_type: str
    incident_id: str
    at: datetime
    message: RenderedMessage
    incident: Mapping[str, Any] | None = None
    """The incident's essentials (``targets.incident_summary``); None in older records."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The target's channel settings (a webhook's ``secret_env``)."""


class Channel(Protocol):
    """A way to reach people: LINE, e-mail, a webhook, the outbox."""

    @property
    def name(self) -> str:
        """The channel's name in config (``ChannelPolicy``) and in delivery records."""
        ...

    @property
    def idempotent(self) -> bool:
        """True when a repeated ``send`` with the same ``key`` cannot deliver twice."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds one ``send`` takes at most."""
        ...

    async def start(self) -> None:
        """Open connections (inside the running event loop)."""
        ...

    async def stop(self) -> None:
        """Close them; safe to call twice."""
        ...

    async def send(self, target: str, message: Outgoing, key: str) -> Receipt:
        """Deliver ``message`` to ``target`` once, or raise ``DeliveryError``."""
        ...
