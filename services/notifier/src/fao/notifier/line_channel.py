"""The LINE channel: one push request per delivery, through line-bot-sdk v3's async client.

``LineChannel.send`` makes exactly one attempt and either returns a ``SendReceipt`` or raises
``DeliveryError``; retrying is the dispatcher's job. How LINE's answers are classified
(developers.line.biz "Retrying an API request", "Status codes"):

======================================  ===========================================
2xx                                     sent
409 (retry key already accepted)        sent earlier: a receipt with ``already_accepted``
                                        and ``x-line-accepted-request-id``
429 "You have reached your monthly      ``MonthlyLimitError`` (fresh): no LINE push
limit."                                 until the next month (``channels.monthly_limit``)
408, 429 (rate limit), 5xx              transient (``DeliveryError(permanent=False)``)
timeout, connection error               transient
400 "Failed to send messages"           permanent, the *target* is bad: an unknown group,
                                        or one the bot is no longer in (``target=True``)
any other 4xx (bad message, bad token)  permanent (``DeliveryError(permanent=True)``)
======================================  ===========================================

The SDK's ``AsyncApiClient`` opens an aiohttp session when constructed, so ``start`` must run
inside the event loop (the service's start hook) and ``stop`` closes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, Protocol

import aiohttp
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    FlexContainer,
    FlexMessage,
    PushMessageRequest,
    TextMessage,
)

from fao.notifier.channels.contract import Receipt
from fao.notifier.channels.monthly_limit import limit_until
from fao.notifier.errors import DeliveryError, MonthlyLimitError
from fao.notifier.render import RenderedMessage

REQUEST_ID: Final = "x-line-request-id"
ACCEPTED_REQUEST_ID: Final = "x-line-accepted-request-id"
TRANSIENT_STATUSES: Final = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})
# LINE's wording (developers.line.biz, "Status codes" / "Error messages"); the rate-limit 429 says
# "The API rate limit has been exceeded. Try again later." and stays transient.
MONTHLY_LIMIT_MESSAGE: Final = "You have reached your monthly limit."
TARGET_GONE_MESSAGE: Final = "Failed to send messages"

SendReceipt = Receipt
"""What LINE said when it took the message (the channels' ``Receipt``)."""


class Sender(Protocol):
    """A channel that can push messages to one target; one attempt per call."""

    async def send(self, target: str, messages: Sequence[RenderedMessage], retry_key: str) -> SendReceipt:
        """Deliver or raise ``DeliveryError``."""
        ...


def to_flex_message(message: RenderedMessage) -> FlexMessage:
    """The SDK model of a rendered Flex message (validates the bubble against LINE's schema)."""
    if message.bubble is None:
        raise ValueError(f"a {message.kind} message is a text message, not a Flex message")
    return FlexMessage(alt_text=message.alt_text, contents=FlexContainer.from_dict(message.bubble))


def to_line_message(message: RenderedMessage) -> FlexMessage | TextMessage:
    """The SDK model of a rendered message: Flex when it has a bubble, else a plain text message."""
    if message.bubble is None:
        return TextMessage(text=message.text)
    return to_flex_message(message)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _json_body(body: object) -> dict[str, Any]:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _sent_ids(body: Mapping[str, Any]) -> tuple[str, ...]:
    sent = body.get("sentMessages")
    if not isinstance(sent, list):
        return ()
    return tuple(str(item["id"]) for item in sent if isinstance(item, dict) and "id" in item)


def classify_api_error(exc: ApiException, now: datetime | None = None) -> SendReceipt | DeliveryError:
    """Translate a non-2xx answer from the SDK into a receipt (409) or a ``DeliveryError``
    (``now``: when LINE answered, for the end of a monthly limit)."""
    status = int(exc.status or 0)
    headers = exc.headers
    body = _json_body(exc.body)
    if status == HTTPStatus.CONFLICT:
        return SendReceipt(
            request_id=_header(headers, REQUEST_ID),
            sent_message_ids=_sent_ids(body),
            already_accepted=True,
            accepted_request_id=_header(headers, ACCEPTED_REQUEST_ID),
        )
    reason = str(body.get("message") or exc.reason or "no reason given")
    details = body.get("details")
    if isinstance(details, list) and details:
        reason += " (" + "; ".join(f"{d.get('property')}: {d.get('message')}" for d in details[:5]) + ")"
    message = f"LINE answered {status}: {reason}"
    if status == HTTPStatus.TOO_MANY_REQUESTS and body.get("message") == MONTHLY_LIMIT_MESSAGE:
        until = limit_until(now or datetime.now(UTC))
        return MonthlyLimitError(message, until=until, fresh=True, status=status)
    transient = status in TRANSIENT_STATUSES or status >= HTTPStatus.INTERNAL_SERVER_ERROR
    gone = status == HTTPStatus.BAD_REQUEST and body.get("message") == TARGET_GONE_MESSAGE
    return DeliveryError(message, permanent=not transient, status=status, target=gone)


def classify_transport_error(exc: BaseException) -> DeliveryError:
    """A request that got no answer (timeout, refused or dropped connection) may work later."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since Python 3.11
        return DeliveryError("LINE did not answer in time", permanent=False)
    return DeliveryError(f"cannot reach LINE: {type(exc).__name__}: {exc}", permanent=False)


class LineChannel:
    """Pushes messages with the LINE Messaging API (``POST /v2/bot/message/push``)."""

    name: Final = "line"

    def __init__(self, *, base_url: str, access_token: str, timeout: float) -> None:
        self._configuration = Configuration(host=base_url.rstrip("/"), access_token=access_token)
        self._timeout = timeout
        self._client: Any = None
        self._api: Any = None

    async def start(self) -> None:
        """Open the SDK's HTTP session (inside the running loop)."""
        if self._client is None:
            self._client = AsyncApiClient(self._configuration)
            self._api = AsyncMessagingApi(self._client)

    async def stop(self) -> None:
        client, self._client, self._api = self._client, None, None
        if client is not None:
            await client.close()

    async def send(self, target: str, messages: Sequence[RenderedMessage], retry_key: str) -> SendReceipt:
        """One push of up to 5 messages to ``target`` with ``X-Line-Retry-Key: retry_key``."""
        if self._api is None:
            raise RuntimeError("LineChannel.send called before start()")
        try:
            request = PushMessageRequest(to=target, messages=[to_line_message(m) for m in messages])
        except (ValueError, TypeError) as exc:  # the SDK's pydantic.v1 ValidationError is a ValueError
            raise DeliveryError(f"LINE would refuse this message: {exc}", permanent=True) from exc
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._api.push_message_with_http_info(
                    request, x_line_retry_key=retry_key, _request_timeout=self._timeout
                )
        except ApiException as exc:
            outcome = classify_api_error(exc)
            if isinstance(outcome, DeliveryError):
                raise outcome from exc
            return outcome
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify_transport_error(exc) from exc
        sent = getattr(response.data, "sent_messages", None) or []
        return SendReceipt(
            request_id=_header(response.headers, REQUEST_ID),
            sent_message_ids=tuple(str(m.id) for m in sent),
        )
