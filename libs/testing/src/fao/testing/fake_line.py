"""An in-process fake of the LINE Messaging API sending endpoints.

`FakeLineServer` is a small aiohttp server that runs inside the caller's event loop. Point the real
line-bot-sdk v3 client at it with ``Configuration(host=line.base_url, access_token=...)`` and the notifier
talks to it exactly as it would talk to ``https://api.line.me``.

What it emulates, with LINE's documented status codes, bodies and headers:

* ``POST /v2/bot/message/push``: bearer-token check, body validation (``to``; 1 to 5 message objects,
  each with a ``type``; text length in UTF-16 code units; Flex ``altText`` and size limits), unknown
  groups or rooms, ``X-Line-Retry-Key`` idempotency (a key whose request was accepted answers ``409``
  with ``x-line-accepted-request-id`` and the original ``sentMessages`` for 24 hours; a key whose
  request failed is not accepted and may be retried) and the monthly quota (``429``).
* ``POST /v2/bot/message/reply``: free of quota, a reply token works once, and an
  ``X-Line-Retry-Key`` header is refused with ``400``.
* ``GET /v2/bot/group/{groupId}/summary``: ``{groupId, groupName}`` for a group the bot is in
  (``groups``, `add_group`; named with `set_group_name`), ``404`` for any other (`remove_group`: the bot left).
* ``GET /v2/bot/group/{groupId}/members/count``: ``{count}``, the member count given in ``groups`` or
  `add_group` (what a push to the group costs), ``404`` for a group the bot is not in.
* Webhooks *to* the bot, signed like LINE's (`FakeLineServer.send_webhook`, `webhook_body`,
  `sign_webhook` and the event builders `postback_event`, `message_event`, `join_event`,
  `leave_event`, `member_joined_event`, `member_left_event`).
* ``GET /v2/bot/message/quota`` and ``GET /v2/bot/message/quota/consumption``. A push costs the
  member count of the target group (1 for a user) per request, whatever the number of messages in it.
* Every response carries a fresh ``x-line-request-id``; every request is recorded.
* Fault injection: `FakeLineServer.fail_next` answers the next requests with an error status and
  `FakeLineServer.delay_next` holds responses back, to provoke client timeouts. Either can be limited
  to pushes addressed to one chat (``to=``) and can last until `FakeLineServer.clear_faults`
  (``count=None``), so one group's LINE can be "down" while the others work.

What it does not emulate: multicast, broadcast, narrowcast, group member and profile look-ups, rate
limits (inject ``429`` instead), delivery to blocked users, reply-token expiry by time (use
`FakeLineServer.expire_reply_token`) and the full message-object schema.
Error messages that LINE documents (retry key already accepted, monthly limit, rate limit, invalid reply
token, failed to send) are verbatim; the others, such as validation details, only imitate LINE's style.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp
from aiohttp import web

__all__ = [
    "BOT_USER_ID",
    "CONSUMPTION_PATH",
    "PUSH_PATH",
    "QUOTA_PATH",
    "REPLY_PATH",
    "FakeLineServer",
    "RecordedRequest",
    "join_event",
    "leave_event",
    "member_joined_event",
    "member_left_event",
    "message_event",
    "message_texts",
    "postback_event",
    "sign_webhook",
    "webhook_body",
    "webhook_event_id",
]

PUSH_PATH: Final = "/v2/bot/message/push"
REPLY_PATH: Final = "/v2/bot/message/reply"
QUOTA_PATH: Final = "/v2/bot/message/quota"
CONSUMPTION_PATH: Final = "/v2/bot/message/quota/consumption"

MAX_MESSAGES: Final = 5
MAX_TEXT_UTF16_UNITS: Final = 5000
MAX_ALT_TEXT_CHARS: Final = 1500
MAX_BUBBLE_BYTES: Final = 30 * 1024
MAX_CAROUSEL_BYTES: Final = 50 * 1024
MAX_CAROUSEL_BUBBLES: Final = 12
MAX_BODY_BYTES: Final = 2 * 1024 * 1024
RETRY_KEY_TTL_SECONDS: Final = 24 * 60 * 60

AUTH_MISSING: Final = (
    "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"
)
AUTH_FAILED: Final = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)
RATE_LIMITED: Final = "The API rate limit has been exceeded. Try again later."
MONTHLY_LIMIT: Final = "You have reached your monthly limit."
RETRY_KEY_ACCEPTED: Final = "The retry key is already accepted"
FAILED_TO_SEND: Final = "Failed to send messages"
INVALID_REPLY_TOKEN: Final = "Invalid reply token"
INTERNAL_ERROR: Final = "Internal server error"

# Message types whose sentMessages entry carries a quoteToken.
_QUOTABLE_TYPES: Final = frozenset({"text", "textV2", "sticker", "image", "video"})
# The bot's own user id (a webhook's ``destination``).
BOT_USER_ID: Final = "U" + "0" * 31 + "b"
_GROUP_SUMMARY_RE: Final = re.compile(r"/v2/bot/group/(?P<group>[^/]+)/summary")
_GROUP_MEMBERS_COUNT_RE: Final = re.compile(r"/v2/bot/group/(?P<group>[^/]+)/members/count")
_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CHAT_ID_PREFIXES: Final = ("C", "R")
_POLL_INTERVAL_SECONDS: Final = 0.01
_SHUTDOWN_TIMEOUT_SECONDS: Final = 1.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, with the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    """Request headers with lower-case names."""
    json: Any
    """The decoded JSON body; None when the body was empty or not valid JSON."""
    status: int
    at: datetime
    """Arrival time, timezone-aware UTC."""


@dataclass(kw_only=True)
class _Pending:
    """An injected behaviour waiting for its next `remaining` requests to `path` (None: any path)
    whose body is addressed to `to` (None: any); `remaining` None lasts until cleared."""

    path: str | None
    remaining: int | None
    to: str | None = None


@dataclass(kw_only=True)
class _Fault(_Pending):
    status: int
    message: str | None


@dataclass(kw_only=True)
class _Delay(_Pending):
    seconds: float


_PendingT = TypeVar("_PendingT", bound=_Pending)


@dataclass(frozen=True)
class _Accepted:
    request_id: str
    sent_messages: list[dict[str, str]]
    expires_at: float


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] | None = None


class FakeLineServer:
    """A fake LINE Messaging API server; see the module docstring for what it emulates.

    Use it as ``async with FakeLineServer() as line:`` or call `start` and `stop` yourself.

    Args:
        host: IP address to listen on (a name such as localhost may bind IPv4 and IPv6 on different ports).
        port: TCP port; 0 picks a free one (read it back from `port` or `base_url`).
        access_token: when set, requests must carry ``Authorization: Bearer <access_token>``.
        groups: known group and room IDs mapped to their member count. When given, a push to a
            ``C…``/``R…`` ID not in it fails with ``400 Failed to send messages``.
        quota: monthly message limit; None means unlimited (``{"type": "none"}``).
        retry_key_ttl: seconds an accepted ``X-Line-Retry-Key`` is remembered (LINE: 24 hours).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str | None = None,
        groups: Mapping[str, int] | None = None,
        quota: int | None = None,
        retry_key_ttl: float = RETRY_KEY_TTL_SECONDS,
    ) -> None:
        self.host = host
        self.access_token = access_token
        self.retry_key_ttl = retry_key_ttl
        self.requests: list[RecordedRequest] = []
        self._requested_port = port
        self._initial_groups = dict(groups) if groups is not None else None
        self._initial_quota = quota
        self._groups = dict(self._initial_groups) if self._initial_groups is not None else None
        self._quota = quota
        self._usage = 0
        self._accepted: dict[str, _Accepted] = {}
        self._used_reply_tokens: set[str] = set()
        self._group_names: dict[str, str] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._message_ids = itertools.count(461230966842064897)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = asyncio.Event()

    # Lifecycle

    async def start(self) -> None:
        """Start listening; the server then serves requests in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeLineServer is already running")
        app = web.Application(client_max_size=2 * MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._stopping = asyncio.Event()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info("fake LINE Messaging API listening on %s", self.base_url)

    async def stop(self) -> None:
        """Stop the server; delayed responses still pending are released at once. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port the running server listens on."""
        if self._port is None:
            raise RuntimeError("FakeLineServer is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash, for ``Configuration(host=...)``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # Configuration and fault injection

    def set_quota(self, limit: int | None) -> None:
        """Set the monthly message limit; None means unlimited. Usage so far is kept."""
        self._quota = limit

    def add_group(self, group_id: str, member_count: int = 1) -> None:
        """Make a group or room known, with the number of members a push to it costs."""
        if self._groups is None:
            self._groups = {}
        self._groups[group_id] = member_count

    def set_group_name(self, group_id: str, name: str) -> None:
        """Give a group the name its summary shows (the bot is then in it, if `groups` is not given)."""
        self._group_names[group_id] = name

    def remove_group(self, group_id: str) -> None:
        """The bot is no longer in the group: pushes get ``400``, its summary ``404``."""
        if self._groups is not None:
            self._groups.pop(group_id, None)
        self._group_names.pop(group_id, None)

    def expire_reply_token(self, reply_token: str) -> None:
        """Make a reply token invalid, as if its minute had passed."""
        self._used_reply_tokens.add(reply_token)

    def fail_next(
        self,
        status: int = 500,
        count: int | None = 1,
        path: str | None = PUSH_PATH,
        message: str | None = None,
        *,
        to: str | None = None,
    ) -> None:
        """Answer the next `count` requests to `path` (None: any path) with `status`.

        `count` None: every such request until `clear_faults`. `to`: only requests whose JSON body
        is addressed to it (a push's ``to``), so one group can fail while the others are served.
        The body is ``{"message": message}``; by default LINE's own wording for 500 and 429 (rate limit).
        Such a request has no other effect: a push is not accepted, so its retry key stays usable.
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if status < HTTPStatus.BAD_REQUEST:
            raise ValueError(f"an injected fault needs an error status (400 or more), not {status}")
        self._faults.append(_Fault(status=status, path=path, remaining=count, message=message, to=to))

    def delay_next(
        self, seconds: float, count: int | None = 1, path: str | None = PUSH_PATH, *, to: str | None = None
    ) -> None:
        """Hold back the responses to the next `count` requests to `path` (None: any path).

        The request takes effect first (a push is accepted and recorded) and only the response is
        late, which is the ambiguous timeout that ``X-Line-Retry-Key`` exists for. `count` None and
        `to` as in `fail_next`; a request that gets an injected fault is delayed too.
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._delays.append(_Delay(seconds=seconds, path=path, remaining=count, to=to))

    def clear_faults(self, to: str | None = None) -> None:
        """Forget the injected faults and delays not used up yet (only those limited to `to`, if given)."""
        self._faults[:] = [f for f in self._faults if to is not None and f.to != to]
        self._delays[:] = [d for d in self._delays if to is not None and d.to != to]

    def clear(self) -> None:
        """Forget the recorded requests; server state (accepted retry keys, usage, faults) stays."""
        self.requests.clear()

    def reset(self) -> None:
        """Return to the state right after construction: records, keys, tokens, usage, faults, config."""
        self.requests.clear()
        self._groups = dict(self._initial_groups) if self._initial_groups is not None else None
        self._quota = self._initial_quota
        self._usage = 0
        self._accepted.clear()
        self._used_reply_tokens.clear()
        self._group_names.clear()
        self._faults.clear()
        self._delays.clear()

    # Inspection

    @property
    def usage(self) -> int:
        """Messages counted against the quota this "month" (what ``/quota/consumption`` reports)."""
        return self._usage

    @property
    def pushes(self) -> list[dict[str, Any]]:
        """Bodies of the accepted (status 200) push requests, oldest first."""
        return self._accepted_bodies(PUSH_PATH)

    @property
    def replies(self) -> list[dict[str, Any]]:
        """Bodies of the accepted (status 200) reply requests, oldest first."""
        return self._accepted_bodies(REPLY_PATH)

    def pushes_to(self, to: str) -> list[dict[str, Any]]:
        """Bodies of the accepted pushes addressed to `to` (a group, room or user ID)."""
        return [body for body in self.pushes if body.get("to") == to]

    def texts(self, group_id: str | None = None) -> list[str]:
        """Every human-readable text in the accepted pushes (to `group_id` only, if given).

        See `message_texts` for what counts as text.
        """
        bodies = self.pushes if group_id is None else self.pushes_to(group_id)
        return [text for body in bodies for message in body["messages"] for text in message_texts(message)]

    async def wait_for_pushes(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """Wait until at least `n` pushes were accepted and return all accepted pushes.

        Raises:
            AssertionError: after `timeout` seconds, listing the requests received so far.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(pushes := self.pushes) < n:
            if loop.time() >= deadline:
                raise AssertionError(self._describe_shortfall(n, timeout))
            await asyncio.sleep(_POLL_INTERVAL_SECONDS)
        return pushes

    # Webhooks to the bot

    async def send_webhook(
        self,
        url: str,
        events: list[dict[str, Any]],
        *,
        channel_secret: str,
        signature: str | None = None,
        body: bytes | None = None,
        destination: str = BOT_USER_ID,
    ) -> int:
        """POST a webhook to ``url`` as LINE does and return the HTTP status the bot answered.

        The body is `webhook_body` of ``events`` (or ``body`` as given), signed with
        ``channel_secret`` in ``X-Line-Signature``, unless ``signature`` is given (a forged one;
        ``""`` sends no signature header at all).
        """
        raw = body if body is not None else webhook_body(events, destination)
        sig = sign_webhook(raw, channel_secret) if signature is None else signature
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "LineBotWebhook/2.0"}
        if sig:
            headers["X-Line-Signature"] = sig
        async with aiohttp.ClientSession() as session, session.post(url, data=raw, headers=headers) as answer:
            await answer.read()
            return answer.status

    def _accepted_bodies(self, path: str) -> list[dict[str, Any]]:
        return [
            request.json
            for request in self.requests
            if request.path == path and request.method == "POST" and request.status == HTTPStatus.OK
        ]

    def _describe_shortfall(self, n: int, timeout: float) -> str:
        got = len(self.pushes)
        lines = [f"expected at least {n} accepted push(es) within {timeout:g}s, got {got}"]
        recent = self.requests[-20:]
        if recent:
            lines.append(f"last {len(recent)} of {len(self.requests)} recorded request(s):")
            lines.extend(f"  {r.method} {r.path} -> {r.status} {_summarize(r.json)}" for r in recent)
        else:
            lines.append("no request reached the fake LINE server (check the client's host setting)")
        return "\n".join(lines)

    # Request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        path = request.path
        headers = {name.lower(): value for name, value in request.headers.items()}
        raw = await request.read()
        decoded, body = _decode_json(raw)

        to = body.get("to") if decoded and isinstance(body, dict) else None
        fault = _take(self._faults, path, to)
        if fault is not None:
            answer = _Answer(fault.status, {"message": fault.message or _default_message(fault.status)})
        else:
            answer = self._route(request.method, path, headers, raw, decoded, body, request_id)

        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=path,
                headers=headers,
                json=body if decoded else None,
                status=int(answer.status),
                at=at,
            )
        )
        _log.info("%s %s -> %d", request.method, path, answer.status)
        if answer.status == HTTPStatus.OK and path in (PUSH_PATH, REPLY_PATH):
            texts = [text for message in body["messages"] for text in message_texts(message)]
            _log.info("  to %s: %s", body.get("to", "reply"), " | ".join(texts))

        delay = _take(self._delays, path, to)
        if delay is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay.seconds)

        response_headers = {"x-line-request-id": request_id, **(answer.headers or {})}
        return web.json_response(answer.body, status=answer.status, headers=response_headers)

    def _route(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        raw: bytes,
        decoded: bool,
        body: Any,
        request_id: str,
    ) -> _Answer:
        routes = {PUSH_PATH: "POST", REPLY_PATH: "POST", QUOTA_PATH: "GET", CONSUMPTION_PATH: "GET"}
        summary = _GROUP_SUMMARY_RE.fullmatch(path)
        if summary is not None:
            return self._authenticate(headers) or self._group_summary(method, summary["group"])
        members = _GROUP_MEMBERS_COUNT_RE.fullmatch(path)
        if members is not None:
            return self._authenticate(headers) or self._group_members_count(method, members["group"])
        if path not in routes:
            return _Answer(HTTPStatus.NOT_FOUND, {"message": "Not found"})
        if method != routes[path]:
            return _Answer(HTTPStatus.METHOD_NOT_ALLOWED, {"message": "Method not allowed"})
        denied = self._authenticate(headers)
        if denied is not None:
            return denied
        if path == QUOTA_PATH:
            quota = {"type": "none"} if self._quota is None else {"type": "limited", "value": self._quota}
            return _Answer(HTTPStatus.OK, quota)
        if path == CONSUMPTION_PATH:
            return _Answer(HTTPStatus.OK, {"totalUsage": self._usage})
        if len(raw) > MAX_BODY_BYTES:
            return _Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "Request entity too large"})
        if path == PUSH_PATH:
            return self._push(headers, decoded, body, request_id)
        return self._reply(headers, decoded, body)

    def _authenticate(self, headers: Mapping[str, str]) -> _Answer | None:
        if self.access_token is None:
            return None
        authorization = headers.get("authorization")
        if authorization is None or not authorization.startswith("Bearer "):
            return _Answer(HTTPStatus.UNAUTHORIZED, {"message": AUTH_MISSING})
        if authorization.removeprefix("Bearer ").strip() != self.access_token:
            return _Answer(HTTPStatus.UNAUTHORIZED, {"message": AUTH_FAILED})
        return None

    def _push(self, headers: Mapping[str, str], decoded: bool, body: Any, request_id: str) -> _Answer:
        retry_key = headers.get("x-line-retry-key")
        if retry_key is not None:
            if _UUID_RE.fullmatch(retry_key) is None:
                return _Answer(
                    HTTPStatus.BAD_REQUEST,
                    {"message": "The X-Line-Retry-Key header must be a UUID in hexadecimal notation"},
                )
            retry_key = retry_key.lower()
            accepted = self._accepted_retry_key(retry_key)
            if accepted is not None:
                return _Answer(
                    HTTPStatus.CONFLICT,
                    {"message": RETRY_KEY_ACCEPTED, "sentMessages": accepted.sent_messages},
                    {"x-line-accepted-request-id": accepted.request_id},
                )

        invalid = _invalid_body(decoded, body, "to")
        if invalid is not None:
            return invalid
        cost = self._cost(body["to"])
        if cost is None:
            return _Answer(HTTPStatus.BAD_REQUEST, {"message": FAILED_TO_SEND})
        if self._quota is not None and self._usage + cost > self._quota:
            return _Answer(HTTPStatus.TOO_MANY_REQUESTS, {"message": MONTHLY_LIMIT})

        self._usage += cost
        sent = self._sent_messages(body["messages"])
        if retry_key is not None:
            expires_at = time.monotonic() + self.retry_key_ttl
            self._accepted[retry_key] = _Accepted(request_id, sent, expires_at)
        return _Answer(HTTPStatus.OK, {"sentMessages": sent})

    def _reply(self, headers: Mapping[str, str], decoded: bool, body: Any) -> _Answer:
        if "x-line-retry-key" in headers:
            return _Answer(
                HTTPStatus.BAD_REQUEST,
                {"message": "The X-Line-Retry-Key header is not supported by this endpoint"},
            )
        invalid = _invalid_body(decoded, body, "replyToken")
        if invalid is not None:
            return invalid
        token = body["replyToken"]
        if token in self._used_reply_tokens:
            return _Answer(HTTPStatus.BAD_REQUEST, {"message": INVALID_REPLY_TOKEN})
        self._used_reply_tokens.add(token)
        return _Answer(HTTPStatus.OK, {"sentMessages": self._sent_messages(body["messages"])})

    def _group_summary(self, method: str, group_id: str) -> _Answer:
        if method != "GET":
            return _Answer(HTTPStatus.METHOD_NOT_ALLOWED, {"message": "Method not allowed"})
        known = group_id in self._groups if self._groups is not None else group_id in self._group_names
        if not known:
            return _Answer(HTTPStatus.NOT_FOUND, {"message": "Not found"})
        name = self._group_names.get(group_id, f"Group {group_id[1:7]}")
        return _Answer(HTTPStatus.OK, {"groupId": group_id, "groupName": name})

    def _group_members_count(self, method: str, group_id: str) -> _Answer:
        if method != "GET":
            return _Answer(HTTPStatus.METHOD_NOT_ALLOWED, {"message": "Method not allowed"})
        count = self._groups.get(group_id) if self._groups is not None else None
        if count is None:
            return _Answer(HTTPStatus.NOT_FOUND, {"message": "Not found"})
        return _Answer(HTTPStatus.OK, {"count": count})

    def _accepted_retry_key(self, retry_key: str) -> _Accepted | None:
        accepted = self._accepted.get(retry_key)
        if accepted is not None and accepted.expires_at <= time.monotonic():
            del self._accepted[retry_key]
            return None
        return accepted

    def _cost(self, to: str) -> int | None:
        """Messages a push to `to` consumes, or None if `to` is a chat the bot is not in."""
        if not to.startswith(_CHAT_ID_PREFIXES):
            return 1
        if self._groups is None:
            return 1
        return self._groups.get(to)

    def _sent_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        sent: list[dict[str, str]] = []
        for message in messages:
            entry = {"id": str(next(self._message_ids))}
            if message["type"] in _QUOTABLE_TYPES:
                entry["quoteToken"] = secrets.token_urlsafe(24)
            sent.append(entry)
        return sent


def message_texts(message: Mapping[str, Any]) -> list[str]:
    """The human-readable texts of one message object, in document order.

    That is a text message's ``text``, plus, for Flex and template messages, the ``altText`` followed by
    every ``text`` field nested in ``contents`` (Flex) or ``template``.
    """
    texts: list[str] = []
    text = message.get("text")
    if isinstance(text, str):
        texts.append(text)
    alt_text = message.get("altText")
    if isinstance(alt_text, str):
        texts.append(alt_text)
    for key in ("contents", "template"):
        _collect_texts(message.get(key), texts)
    return texts


def _collect_texts(node: Any, into: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                into.append(value)
            else:
                _collect_texts(value, into)
    elif isinstance(node, list):
        for item in node:
            _collect_texts(item, into)


def _take(pending: list[_PendingT], path: str, to: object) -> _PendingT | None:
    for item in pending:
        if (item.path is None or item.path == path) and (item.to is None or item.to == to):
            if item.remaining is not None:
                item.remaining -= 1
                if item.remaining == 0:
                    pending.remove(item)
            return item
    return None


def _decode_json(raw: bytes) -> tuple[bool, Any]:
    if not raw:
        return False, None
    try:
        return True, json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False, None


def _default_message(status: int) -> str:
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return INTERNAL_ERROR
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return RATE_LIMITED
    if status == HTTPStatus.UNAUTHORIZED:
        return AUTH_FAILED
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _invalid_body(decoded: bool, body: Any, target: str) -> _Answer | None:
    """Validate a push (`target` "to") or reply (`target` "replyToken") body; None when it is valid."""
    if not decoded or not isinstance(body, dict):
        return _Answer(HTTPStatus.BAD_REQUEST, {"message": "The request body must be a JSON object"})
    details: list[dict[str, str]] = []
    value = body.get(target)
    if not isinstance(value, str) or not value:
        details.append({"message": "must be specified", "property": target})
    messages = body.get("messages")
    if not isinstance(messages, list):
        details.append({"message": "must be specified", "property": "messages"})
    elif not 1 <= len(messages) <= MAX_MESSAGES:
        details.append({"message": f"Size must be between 1 and {MAX_MESSAGES}", "property": "messages"})
    else:
        for index, message in enumerate(messages):
            details.extend(_message_problems(f"messages[{index}]", message))
    if not details:
        return None
    return _Answer(
        HTTPStatus.BAD_REQUEST,
        {"message": f"The request body has {len(details)} error(s)", "details": details},
    )


def _message_problems(prop: str, message: Any) -> list[dict[str, str]]:
    if not isinstance(message, dict):
        return [{"message": "must be an object", "property": prop}]
    message_type = message.get("type")
    if not isinstance(message_type, str) or not message_type:
        return [{"message": "must be specified", "property": f"{prop}.type"}]
    if message_type in ("text", "textV2"):
        return _text_problems(f"{prop}.text", message.get("text"))
    if message_type == "flex":
        return _flex_problems(prop, message)
    return []


def _text_problems(prop: str, text: Any) -> list[dict[str, str]]:
    if not isinstance(text, str) or not text:
        return [{"message": "must be specified", "property": prop}]
    if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_UTF16_UNITS:
        return [{"message": f"Length must be between 0 and {MAX_TEXT_UTF16_UNITS}", "property": prop}]
    return []


def _flex_problems(prop: str, message: Mapping[str, Any]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    alt_text = message.get("altText")
    if not isinstance(alt_text, str) or not alt_text:
        problems.append({"message": "must be specified", "property": f"{prop}.altText"})
    elif len(alt_text) > MAX_ALT_TEXT_CHARS:
        problems.append(
            {"message": f"Length must be between 0 and {MAX_ALT_TEXT_CHARS}", "property": f"{prop}.altText"}
        )
    contents = message.get("contents")
    if not isinstance(contents, dict) or contents.get("type") not in ("bubble", "carousel"):
        problems.append({"message": "must be a bubble or a carousel", "property": f"{prop}.contents"})
        return problems
    size = len(json.dumps(contents, ensure_ascii=False, separators=(",", ":")).encode())
    if contents["type"] == "bubble" and size > MAX_BUBBLE_BYTES:
        problems.append({"message": "Size must be at most 30KB", "property": f"{prop}.contents"})
    if contents["type"] == "carousel":
        bubbles = contents.get("contents")
        if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= MAX_CAROUSEL_BUBBLES:
            problems.append(
                {
                    "message": f"Size must be between 1 and {MAX_CAROUSEL_BUBBLES}",
                    "property": f"{prop}.contents.contents",
                }
            )
        if size > MAX_CAROUSEL_BYTES:
            problems.append({"message": "Size must be at most 50KB", "property": f"{prop}.contents"})
    return problems


def _summarize(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    target = body.get("to", body.get("replyToken", ""))
    messages = body.get("messages")
    count = len(messages) if isinstance(messages, list) else 0
    return f"(to={target!r}, {count} message(s))" if target else ""


# Webhook bodies and events, shaped like LINE's (developers.line.biz, Messaging API reference,
# "Webhook event objects"): every event has a ULID ``webhookEventId``, ``deliveryContext``, ``mode``
# and a millisecond ``timestamp``.

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def webhook_event_id(at_ms: int | None = None) -> str:
    """A ULID as LINE uses for ``webhookEventId``: 48 bits of milliseconds, 80 random bits."""
    value = ((at_ms if at_ms is not None else int(time.time() * 1000)) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def webhook_body(events: list[dict[str, Any]], destination: str = BOT_USER_ID) -> bytes:
    """The JSON body of a webhook carrying ``events``."""
    return json.dumps({"destination": destination, "events": events}, ensure_ascii=False).encode()


def sign_webhook(body: bytes, channel_secret: str) -> str:
    """``X-Line-Signature``: Base64(HMAC-SHA256(channel secret, raw body))."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _source(group_id: str | None, user_id: str | None) -> dict[str, str]:
    if group_id is None:
        if user_id is None:
            raise ValueError("an event needs a group or a user")
        return {"type": "user", "userId": user_id}
    kind = "room" if group_id.startswith("R") else "group"
    source = {"type": kind, f"{kind}Id": group_id}
    if user_id is not None:
        source["userId"] = user_id
    return source


def _event(
    kind: str,
    source: dict[str, str],
    *,
    reply: bool,
    redelivery: bool,
    mode: str,
    **fields: Any,
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    event: dict[str, Any] = {
        "type": kind,
        "mode": mode,
        "timestamp": now_ms,
        "source": source,
        "webhookEventId": webhook_event_id(now_ms),
        "deliveryContext": {"isRedelivery": redelivery},
        **fields,
    }
    if reply and mode == "active":
        event["replyToken"] = secrets.token_hex(16)
    return event


def postback_event(
    data: str,
    *,
    group_id: str | None = None,
    user_id: str | None = None,
    redelivery: bool = False,
    mode: str = "active",
) -> dict[str, Any]:
    """A tap on a postback button (in ``group_id``, by ``user_id`` when LINE gives it)."""
    return _event(
        "postback", _source(group_id, user_id), reply=True, redelivery=redelivery, mode=mode,
        postback={"data": data},
    )  # fmt: skip


def message_event(
    text: str,
    *,
    user_id: str | None = None,
    group_id: str | None = None,
    redelivery: bool = False,
    mode: str = "active",
) -> dict[str, Any]:
    """A text message (1:1 from ``user_id`` when no ``group_id``)."""
    message = {
        "id": str(secrets.randbits(60)),
        "type": "text",
        "quoteToken": secrets.token_urlsafe(16),
        "text": text,
    }
    return _event(
        "message", _source(group_id, user_id), reply=True, redelivery=redelivery, mode=mode, message=message
    )


def join_event(group_id: str, *, mode: str = "active") -> dict[str, Any]:
    """The bot was added to ``group_id`` (a group ``C…`` or room ``R…``)."""
    return _event("join", _source(group_id, None), reply=True, redelivery=False, mode=mode)


def leave_event(group_id: str, *, mode: str = "active") -> dict[str, Any]:
    """The bot was removed from ``group_id`` (no reply token)."""
    return _event("leave", _source(group_id, None), reply=False, redelivery=False, mode=mode)


def _members(user_ids: list[str]) -> dict[str, Any]:
    return {"members": [{"type": "user", "userId": user} for user in user_ids]}


def member_joined_event(group_id: str, user_ids: list[str]) -> dict[str, Any]:
    return _event(
        "memberJoined", _source(group_id, None), reply=True, redelivery=False, mode="active",
        joined=_members(user_ids),
    )  # fmt: skip


def member_left_event(group_id: str, user_ids: list[str]) -> dict[str, Any]:
    return _event(
        "memberLeft", _source(group_id, None), reply=False, redelivery=False, mode="active",
        left=_members(user_ids),
    )  # fmt: skip
