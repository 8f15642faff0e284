"""What the gateway asks of the LINE Messaging API: replies (free of quota), a group's name and
member count. Through line-bot-sdk v3's async client, pointed at ``FAO_LINE_API_BASE``.

Nothing here raises: LINE failing (an expired reply token, a group the bot is no longer in, a
timeout) is logged and reads as "not sent" / "unknown", because the webhook's effect (a command,
a record) is already durable by the time these calls are made. Without an access token
(``NoLine``) every call is a log line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
import structlog
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    TextMessage,
)

log = structlog.get_logger()

# LINE's limits: quick-reply labels ≤ 20 characters, at most 13 items; text ≤ 5000.
MAX_LABEL: Final = 20
MAX_QUICK_REPLIES: Final = 13
MAX_TEXT: Final = 5000


# LINE calls made after the webhook has been answered (replies, group look-ups).
FollowUp = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Choice:
    """One quick-reply button: ``label`` on the button, ``display`` shown as the user's message."""

    label: str
    data: str
    display: str


def short_label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


class LineApi(Protocol):
    async def reply(self, reply_token: str, text: str, choices: Sequence[Choice] = ()) -> bool:
        """Answer with one text message (and quick-reply buttons); True when LINE took it."""
        ...

    async def group_name(self, group_id: str) -> str | None: ...

    async def member_count(self, group_id: str) -> int | None: ...


def _reply_request(reply_token: str, text: str, choices: Sequence[Choice]) -> ReplyMessageRequest:
    quick = None
    if choices:
        items = [
            QuickReplyItem(
                action=PostbackAction(label=short_label(c.label), data=c.data, display_text=c.display[:300])
            )
            for c in choices[:MAX_QUICK_REPLIES]
        ]
        quick = QuickReply(items=items)
    return ReplyMessageRequest(
        reply_token=reply_token, messages=[TextMessage(text=text[:MAX_TEXT], quick_reply=quick)]
    )


class SdkLine:
    """The real client; ``start`` inside the event loop (the SDK opens its session there)."""

    def __init__(self, base_url: str, access_token: str, timeout: float) -> None:
        self._config = Configuration(host=base_url.rstrip("/"), access_token=access_token)
        self._timeout = timeout
        self._client: AsyncApiClient | None = None
        self._api: AsyncMessagingApi | None = None

    async def start(self) -> None:
        self._client = AsyncApiClient(self._config)
        self._api = AsyncMessagingApi(self._client)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._api = None

    def _ready(self) -> AsyncMessagingApi:
        if self._api is None:
            raise RuntimeError("SdkLine.start() was not called")
        return self._api

    async def reply(self, reply_token: str, text: str, choices: Sequence[Choice] = ()) -> bool:
        try:
            await self._ready().reply_message(
                _reply_request(reply_token, text, choices), _request_timeout=self._timeout
            )
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("line_reply_failed", error=_describe(exc))
            return False
        return True

    async def group_name(self, group_id: str) -> str | None:
        try:
            summary = await self._ready().get_group_summary(group_id, _request_timeout=self._timeout)
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.info("line_group_summary_unavailable", group=group_id, error=_describe(exc))
            return None
        name = getattr(summary, "group_name", None)
        return str(name) if name else None

    async def member_count(self, group_id: str) -> int | None:
        try:
            answer = await self._ready().get_group_member_count(group_id, _request_timeout=self._timeout)
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.info("line_group_count_unavailable", group=group_id, error=_describe(exc))
            return None
        count = getattr(answer, "count", None)
        return int(count) if isinstance(count, int) else None


class NoLine:
    """No access token: nothing is sent; what would have been is logged."""

    async def reply(self, reply_token: str, text: str, choices: Sequence[Choice] = ()) -> bool:
        log.info("line_reply_not_sent", reason="no FAO_LINE_CHANNEL_ACCESS_TOKEN", text=text,
                 choices=[c.label for c in choices])  # fmt: skip
        return False

    async def group_name(self, group_id: str) -> str | None:
        return None

    async def member_count(self, group_id: str) -> int | None:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status}: {str(exc.body or '')[:200]}"
    return f"{type(exc).__name__}: {exc}"
