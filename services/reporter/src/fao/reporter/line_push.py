"""Push the report summary to the management LINE group (line-bot-sdk v3, async).

The `X-Line-Retry-Key` is derived from the period and the group, so every attempt, by any reporter
and after any restart, carries the same key: LINE accepts it once and answers 409 to the others
for 24 hours (counted as delivered). Transient failures (timeouts, 429, 5xx) are retried with
back-off; the outcome is recorded with the report, never raised.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final

import aiohttp
import structlog
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PushMessageRequest,
    TextMessage,
)

from fao.runtime.store import Document

log = structlog.get_logger()

RETRY_NAMESPACE: Final = uuid.UUID("5b0b3e7e-4f0c-5d55-9a57-6f616f2d7270")
REQUEST_ID: Final = "x-line-request-id"
BACKOFF_BASE: Final = 1.0


def retry_key(period_key: str, group: str) -> str:
    """Deterministic per report and group: the same for every attempt of every reporter."""
    return str(uuid.uuid5(RETRY_NAMESPACE, f"report:{period_key}:{group}"))


@dataclass(frozen=True)
class LineTarget:
    base_url: str
    access_token: str
    group: str
    timeout: float
    attempts: int


def _transient(status: int) -> bool:
    return status in (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS) or status >= 500


async def push_summary(target: LineTarget, period_key: str, text: str, now: datetime) -> Document:
    """Push `text`; the record stored with the report (`pushed_at`/`request_id`, or `error`)."""
    key = retry_key(period_key, target.group)
    record: Document = {"group": target.group, "retry_key": key}
    configuration = Configuration(host=target.base_url.rstrip("/"), access_token=target.access_token)
    request = PushMessageRequest(to=target.group, messages=[TextMessage(text=text)])
    async with AsyncApiClient(configuration) as client:
        api: Any = AsyncMessagingApi(client)
        for attempt in range(1, target.attempts + 1):
            try:
                async with asyncio.timeout(target.timeout):
                    response = await api.push_message_with_http_info(
                        request, x_line_retry_key=key, _request_timeout=target.timeout
                    )
            except ApiException as exc:
                status = int(exc.status or 0)
                if status == HTTPStatus.CONFLICT:  # accepted before, under the same key
                    return {**record, "pushed_at": now, "already_accepted": True}
                error = f"LINE answered {status}: {exc.reason}"
                if not _transient(status):
                    log.error("report_summary_refused", group=target.group, error=error)
                    return {**record, "error": error}
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"cannot reach LINE: {type(exc).__name__}: {exc}"
            else:
                headers = response.headers or {}
                return {**record, "pushed_at": now, "request_id": headers.get(REQUEST_ID)}
            log.warning("report_summary_retry", group=target.group, attempt=attempt, error=error)
            if attempt < target.attempts:
                await asyncio.sleep(BACKOFF_BASE * 2 ** (attempt - 1))
    log.error("report_summary_failed", group=target.group, error=error)
    return {**record, "error": error}
