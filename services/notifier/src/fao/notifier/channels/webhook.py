"""The generic webhook channel plug-in: one signed JSON POST per delivery (docs/contracts.md,
"Webhook deliveries").

Body (``webhook_body``, UTF-8 JSON): ``schema_version``, ``delivery_id``, ``event_id``,
``event_type``, ``at``, ``incident`` (the incident's essentials), ``message`` (``kind``, ``title``
= the altText, ``text``) and ``sent_at`` (this try). Headers: ``Content-Type: application/json``,
``X-Fao-Delivery: <delivery id>`` (the same on every try: a receiver drops repeats by it) and,
when the target names a ``secret_env``, ``X-Fao-Signature: sha256=<hex HMAC-SHA256 of the raw
body, keyed with that variable's value>``.

Not idempotent (the receiver decides what a repeat does), so the workers take an exclusive claim
before every attempt. Redirects are not followed.

=======================================  ==========================================
2xx                                      sent
404, 410                                 permanent, the *target* is gone
any other 4xx but 408 and 429            permanent (incl. a ``secret_env`` that is unset)
408, 429, 3xx, 5xx, timeout, connection  transient
=======================================  ==========================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final

import aiohttp

from fao.notifier.channels.contract import Outgoing, Receipt
from fao.notifier.errors import DeliveryError

NAME: Final = "webhook"
SIGNATURE_HEADER: Final = "X-Fao-Signature"
DELIVERY_HEADER: Final = "X-Fao-Delivery"
GONE_STATUSES: Final = frozenset({HTTPStatus.NOT_FOUND, HTTPStatus.GONE})
TRANSIENT_4XX: Final = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})
SCHEMA_VERSION: Final = 1


def webhook_body(message: Outgoing, now: datetime) -> bytes:
    """The JSON body of one try (see the module docstring)."""
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "delivery_id": message.delivery_id,
        "event_id": message.event_id,
        "event_type": message.event_type,
        "at": message.at.isoformat(),
        "incident": dict(message.incident) if message.incident else {"id": message.incident_id},
        "message": {
            "kind": message.message.kind,
            "title": message.message.alt_text,
            "text": message.message.text,
        },
        "sent_at": now.isoformat(),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Fao-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def classify_status(status: int, reason: str) -> DeliveryError | None:
    """None for 2xx; else the error (table above)."""
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return None
    text = f"webhook answered {status}: {' '.join(reason.split())}"[:500]
    if HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR and status not in TRANSIENT_4XX:
        return DeliveryError(text, permanent=True, status=status, target=status in GONE_STATUSES)
    return DeliveryError(text, permanent=False, status=status)


class WebhookChannel:
    """``Channel`` that POSTs to the target URL."""

    name: Final = NAME
    idempotent: Final = False

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        timeout: float = 10.0,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._clock = clock
        self._environ = environ
        self._session: aiohttp.ClientSession | None = None
        self.timeout = timeout

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "fao-notifier"},
            )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _secret(self, message: Outgoing) -> bytes | None:
        name = message.options.get("secret_env")
        if not name:
            return None
        value = self._environ.get(name)
        if not value:
            raise DeliveryError(f"the webhook's signing secret {name} is not set", permanent=True)
        return value.encode()

    async def send(self, target: str, message: Outgoing, key: str) -> Receipt:
        if self._session is None:
            raise RuntimeError("WebhookChannel.send called before start()")
        body = webhook_body(message, self._clock())
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: message.delivery_id}
        secret = self._secret(message)
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        try:
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                reason = (await response.text(errors="replace"))[:200] or (response.reason or "")
                error = classify_status(response.status, reason)
        except TimeoutError as exc:
            raise DeliveryError("the webhook did not answer in time", permanent=False) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(
                f"cannot reach the webhook: {type(exc).__name__}: {exc}", permanent=False
            ) from exc
        if error is not None:
            raise error
        return Receipt(request_id=message.delivery_id)
