"""A LINE webhook body, read tolerantly into the few facts the gateway acts on.

LINE may add fields, event types and enum values at any time; a body from the internet may be
anything. So the body is parsed by hand, never trusted: a body that is not a JSON object with an
``events`` list is ``MalformedWebhookError`` (the caller answers 400); inside it, an event without
a usable ``webhookEventId``/``type``/``timestamp`` is skipped (counted), and a field of the wrong
shape reads as absent (a user id that is not ``U`` + 32 hex is no user id). Events come back
oldest first (LINE does not promise their order).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

SourceKind = Literal["user", "group", "room"]

USER_ID: Final = re.compile(r"U[0-9a-f]{32}")
CHAT_IDS: Final = {"group": re.compile(r"C[0-9a-f]{32}"), "room": re.compile(r"R[0-9a-f]{32}")}
# webhookEventId is a ULID (26 characters); anything printable and short is accepted as a key.
EVENT_ID: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")
MAX_TOKEN: Final = 256
MAX_POSTBACK: Final = 1000
MAX_TEXT: Final = 10000
MAX_MEMBERS: Final = 1000
# A timestamp LINE could send: milliseconds between 2000 and 2200.
MIN_TIMESTAMP_MS: Final = 946_684_800_000
MAX_TIMESTAMP_MS: Final = 7_258_118_400_000


class MalformedWebhookError(ValueError):
    """The body is not a LINE webhook (not JSON, not an object, no ``events`` list)."""


@dataclass(frozen=True)
class Source:
    """Where an event happened: a 1:1 chat with ``user_id``, or a group/room ``chat_id``
    (``user_id`` there only when LINE gives it: users who have not consented have none)."""

    kind: SourceKind
    user_id: str | None
    chat_id: str | None


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    type: str
    timestamp_ms: int
    mode: str
    redelivery: bool
    reply_token: str | None
    source: Source | None
    postback_data: str | None = None
    text: str | None = None
    """The text of a text message event."""
    members: tuple[str, ...] = ()
    """Users who joined (``memberJoined``) or left (``memberLeft``)."""

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    @property
    def active(self) -> bool:
        """``mode: active``: the bot may answer. Standby (another module answers) is only recorded."""
        return self.mode == "active"


@dataclass(frozen=True)
class Webhook:
    destination: str | None
    events: tuple[WebhookEvent, ...]
    skipped: int
    """Events that could not be read (no id, type or timestamp)."""


def parse_webhook(body: bytes) -> Webhook:
    """Read a (signature-checked) webhook body; see the module docstring."""
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedWebhookError(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(decoded, dict):
        raise MalformedWebhookError("body is not a JSON object")
    raw_events = decoded.get("events")
    if not isinstance(raw_events, list):
        raise MalformedWebhookError("body has no 'events' list")
    events = [event for raw in raw_events if (event := _event(raw)) is not None]
    events.sort(key=lambda e: e.timestamp_ms)
    destination = decoded.get("destination")
    return Webhook(
        destination=destination if isinstance(destination, str) and USER_ID.fullmatch(destination) else None,
        events=tuple(events),
        skipped=len(raw_events) - len(events),
    )


def _str(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _user_id(value: Any) -> str | None:
    return value if isinstance(value, str) and USER_ID.fullmatch(value) else None


def _source(raw: Any) -> Source | None:
    source = _dict(raw)
    kind = source.get("type")
    if kind == "user":
        user = _user_id(source.get("userId"))
        return Source("user", user, None) if user else None
    if kind in CHAT_IDS:
        chat = source.get(f"{kind}Id")
        if not isinstance(chat, str) or not CHAT_IDS[kind].fullmatch(chat):
            return None
        return Source(kind, _user_id(source.get("userId")), chat)
    return None


def _members(raw: Any) -> tuple[str, ...]:
    members = _dict(raw).get("members")
    if not isinstance(members, list):
        return ()
    ids = [user for m in members[:MAX_MEMBERS] if (user := _user_id(_dict(m).get("userId")))]
    return tuple(dict.fromkeys(ids))


def _event(raw: Any) -> WebhookEvent | None:
    event = _dict(raw)
    event_id, kind, timestamp = event.get("webhookEventId"), event.get("type"), event.get("timestamp")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        return None
    if not isinstance(kind, str) or not 0 < len(kind) <= 64:
        return None
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return None
    if not MIN_TIMESTAMP_MS <= timestamp <= MAX_TIMESTAMP_MS:
        return None
    message = _dict(event.get("message"))
    text = _str(message.get("text"), MAX_TEXT) if message.get("type") == "text" else None
    members = event.get("joined") if kind == "memberJoined" else event.get("left")
    mode = event.get("mode", "active")
    return WebhookEvent(
        event_id=event_id,
        type=kind,
        timestamp_ms=timestamp,
        mode=mode if isinstance(mode, str) else "unknown",
        redelivery=_dict(event.get("deliveryContext")).get("isRedelivery") is True,
        reply_token=_str(event.get("replyToken"), MAX_TOKEN),
        source=_source(event.get("source")),
        postback_data=_str(_dict(event.get("postback")).get("data"), MAX_POSTBACK),
        text=text,
        members=_members(members) if kind in ("memberJoined", "memberLeft") else (),
    )
