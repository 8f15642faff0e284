"""LINE's webhook signature: ``X-Line-Signature`` = Base64(HMAC-SHA256(channel secret, raw body)).

Checked over the bytes exactly as received, before anything parses them, and compared in constant
time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(body: bytes, secret: str) -> str:
    """The signature LINE puts on ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(body: bytes, signature: str | None, secret: str) -> bool:
    """True only when ``signature`` is the signature of ``body`` with ``secret``."""
    if not signature:
        return False
    expected = sign(body, secret).encode("ascii")
    # Header values come decoded as latin-1: encoding them back gives the bytes as sent.
    return hmac.compare_digest(expected, signature.strip().encode("latin-1", errors="replace"))
