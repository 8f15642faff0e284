"""``NotifierSettings``: the notifier's configuration, read from ``FAO_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from fao.runtime.settings import ServiceSettings

Language = Literal["th", "en"]


class NotifierSettings(ServiceSettings):
    """Defaults are documented in services/notifier/README.md.

    Without ``line_channel_access_token`` messages go to the ``outbox`` collection instead of LINE.
    """

    line_channel_access_token: SecretStr | None = None
    line_api_base: str = "https://api.line.me"
    # Seconds for one push request, connection included (the SDK's own default is 300 s).
    line_timeout: float = Field(default=10.0, gt=0)
    # Tries per delivery in one handling of an event, the first included; then the event is
    # redelivered later by JetStream and the same retry key is used again.
    line_max_attempts: int = Field(default=4, ge=1, le=20)
    # Backoff before retry n (1-based): line_backoff_base * 2**(n-1), jittered ±50 %.
    line_backoff_base: float = Field(default=0.5, ge=0)
    language: Language = "th"
