"""``NotifierSettings``: the notifier's configuration, read from ``FAO_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

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
    # Backoff before a delivery's retry n (1-based): line_backoff_base * 2**(n-1), jittered ±50 %,
    # at most line_backoff_max. A delivery is retried (with the same retry key) until it is final.
    line_backoff_base: float = Field(default=0.5, ge=0)
    line_backoff_max: float = Field(default=60.0, gt=0)
    # Deliveries to LINE failing for this many seconds → one "delivery failing" notice for the
    # platform team (outbox + an error log line) per failing period.
    delivery_failing_after: float = Field(default=300.0, gt=0)
    # Seconds between two reads of every undelivered delivery (resumes what nobody works on, e.g.
    # after a crash; also done at start-up).
    delivery_sweep_interval: float = Field(default=30.0, gt=0)
    # A delivery still failing this long after its first try is given up (failed_permanent): LINE
    # remembers a retry key for 24 h only, so a later retry could be a duplicate.
    delivery_give_up_after: float = Field(default=23 * 3600.0, gt=0, le=24 * 3600.0)
    # Storm digest (fao.notifier.digest): a LINE group gets at most storm_budget messages one by
    # one within storm_window seconds; the window's further messages become one digest listing at
    # most digest_max_listed systems (0: no storm limit).
    storm_budget: int = Field(default=3, ge=0)
    storm_window: float = Field(default=60.0, gt=0, le=3600)
    digest_max_listed: int = Field(default=10, ge=1, le=25)
    # LINE quota (fao.notifier.quota): figures read every quota_refresh_interval seconds, and
    # quota_refresh_after_send seconds after pushes were recorded; digest-only (one digest per
    # group every digest_only_window seconds; critical systems' problems at once) when less than
    # quota_low_remaining of the month's limit is left or the month's forecast exceeds
    # quota_low_forecast times the limit.
    quota_refresh_interval: float = Field(default=300.0, gt=0)
    quota_refresh_after_send: float = Field(default=30.0, ge=0)
    quota_low_remaining: float = Field(default=0.10, ge=0, le=1)
    quota_low_forecast: float = Field(default=1.0, gt=0)
    digest_only_window: float = Field(default=900.0, gt=0, le=86400)
    # E-mail channel (fao.notifier.channels.email): unset host → not configured, teams' e-mail
    # targets are skipped with a log line. STARTTLS is required unless smtp_starttls is false;
    # smtp_ca_file trusts a private CA (the ministry's relay) besides the system's.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "fao@localhost"
    smtp_starttls: bool = True
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_ca_file: Path | None = None
    # Webhook channel (fao.notifier.channels.webhook): seconds per POST.
    webhook_timeout: float = Field(default=10.0, gt=0)
    language: Language = "th"
    # Quarterly owner review (fao.notifier.review): each team's LINE groups are asked to confirm
    # their systems and members at review_hour (Bangkok) on review_day of January, April, July
    # and October; review_every_quarters 2: January and July only, 4: January only.
    review_enabled: bool = True
    review_day: int = Field(default=1, ge=1, le=28)
    review_hour: int = Field(default=10, ge=0, le=23)
    review_every_quarters: int = 1

    @field_validator("review_every_quarters")
    @classmethod
    def _every_1_2_or_4(cls, value: int) -> int:
        if value not in (1, 2, 4):
            raise ValueError("a review every 1, 2 or 4 quarters")
        return value
