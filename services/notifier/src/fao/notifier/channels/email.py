"""The e-mail channel plug-in: one message per delivery over SMTP (aiosmtplib), STARTTLS by default.

The message (``build_email``): ``Subject`` = the rendered altText (one line, Thai, RFC 2047
encoded), body = the rendered plain text (``text/plain; charset=utf-8``), ``From`` =
``FAO_SMTP_FROM``, ``To`` = the target, ``Date``, and a ``Message-ID`` derived from the delivery id
(uuid5 at the sender's domain): every try of a delivery carries the same one, so a mail system or
client that keeps one copy per Message-ID shows a repeat once. Headers ``X-Fao-Delivery`` and
``X-Fao-Incident`` name what it is.

Not idempotent: a second send is a second e-mail, so the workers take an exclusive claim before
every attempt (``fao.notifier.claims``). Without ``FAO_SMTP_HOST`` the channel is not configured
(``from_settings`` gives None) and teams' e-mail targets are skipped with a log line.

How answers are classified:

=============================================  =============================================
250 after DATA                                 sent
recipient refused 550, 551, 553                permanent, the *target* is bad (unknown mailbox)
any other 5xx (auth failed, sender refused,    permanent
message refused), STARTTLS not offered, any
other SMTP protocol error
4xx, timeout, connection refused or dropped    transient
=============================================  =============================================
"""

from __future__ import annotations

import email.policy
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Final
from uuid import UUID, uuid5

import aiosmtplib
from pydantic import SecretStr

from fao.notifier.channels.contract import Outgoing, Receipt
from fao.notifier.errors import DeliveryError

NAME: Final = "email"
# Fixed forever: changing it changes every Message-ID.
MESSAGE_ID_NAMESPACE: Final = UUID("5b1e6f0a-8c2d-4e3f-a1b7-9d0c2e4f6a81")
TARGET_GONE_CODES: Final = frozenset({550, 551, 553})


def message_id(delivery_id: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "fao.invalid"
    return f"<{uuid5(MESSAGE_ID_NAMESPACE, delivery_id)}@{domain}>"


def build_email(message: Outgoing, *, sender: str, recipient: str, now: datetime) -> EmailMessage:
    """The e-mail of one delivery (see the module docstring)."""
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["Subject"] = " ".join(message.message.alt_text.split())
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(message.delivery_id, sender)
    mail["X-Fao-Delivery"] = message.delivery_id
    mail["X-Fao-Incident"] = message.incident_id
    mail.set_content(message.message.text, charset="utf-8")
    return mail


def classify_smtp_error(exc: BaseException) -> DeliveryError:
    """Translate an aiosmtplib (or socket) error into a ``DeliveryError`` (table above)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        if refused is None:
            return DeliveryError("the SMTP server refused the recipient", permanent=True)
        return _by_code(
            refused.code, f"SMTP recipient {refused.recipient} refused", refused.message, rcpt=True
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _by_code(exc.code, f"SMTP recipient {exc.recipient} refused", exc.message, rcpt=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, f"SMTP server answered {type(exc).__name__}", exc.message, rcpt=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError("the SMTP server did not answer in time", permanent=False)
    if isinstance(exc, OSError):  # refused, dropped (SMTPConnectError, SMTPServerDisconnected)
        return DeliveryError(f"cannot reach the SMTP server: {type(exc).__name__}: {exc}", permanent=False)
    # The rest is the configuration's fault (e.g. STARTTLS required but not offered): permanent.
    return DeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}", permanent=True)


def _by_code(code: int, what: str, detail: str, *, rcpt: bool) -> DeliveryError:
    text = f"{what}: {code} {' '.join(str(detail).split())}"[:500]
    if code >= 500:
        return DeliveryError(text, permanent=True, status=code, target=rcpt and code in TARGET_GONE_CODES)
    return DeliveryError(text, permanent=False, status=code)


class EmailChannel:
    """``Channel`` that sends e-mail through one SMTP server."""

    name: Final = NAME
    idempotent: Final = False

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        clock: Callable[[], datetime],
        username: str | None = None,
        password: SecretStr | None = None,
        starttls: bool = True,
        timeout: float = 30.0,
        ca_file: Path | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._clock = clock
        self._username = username
        self._password = password
        self._starttls = starttls
        self._tls_context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self.timeout = timeout

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, target: str, message: Outgoing, key: str) -> Receipt:
        mail = build_email(message, sender=self._sender, recipient=target, now=self._clock())
        try:
            await aiosmtplib.send(
                mail,
                sender=self._sender,
                recipients=[target],
                hostname=self._host,
                port=self._port,
                username=self._username or None,  # empty (compose's default): no AUTH
                password=self._password.get_secret_value() if self._username and self._password else None,
                start_tls=self._starttls,
                tls_context=self._tls_context,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise classify_smtp_error(exc) from exc
        return Receipt(request_id=str(mail["Message-ID"]))
