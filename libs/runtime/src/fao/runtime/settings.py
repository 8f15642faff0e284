"""Settings common to every service, read from ``FAO_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fao.runtime.auth import redact, url_user, with_credentials


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses this and adds its own (documented in README)."""

    model_config = SettingsConfigDict(env_prefix="FAO_", extra="ignore", frozen=True)

    # May carry ``user:password@``; or give FAO_NATS_USER / FAO_NATS_PASSWORD (never logged).
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    # True: create/update the Fao streams and config buckets at start-up (a server without
    # authorization, or the admin user). False (a least-privilege service user): only check they
    # exist, and wait, logging ``bus_not_ready``, until the admin (``fao apply``) has created them.
    nats_manage_streams: bool = True
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000"
    mongo_db: str = "fao"
    http_host: str = "127.0.0.1"
    # 0 picks a free port (the chosen port is logged); -1 disables /healthz and /metrics.
    http_port: int = Field(default=0, ge=-1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # Singleton services (one active instance, the others standby): lease time-to-live in seconds.
    # A crashed active instance is replaced within about this long.
    lease_ttl: float = Field(default=6.0, gt=0)
    # Seconds between two attempts to reach NATS while it is unreachable. Services never give up
    # (at start-up or after losing the connection); a connection closed for good stops the process.
    nats_reconnect_wait: int = Field(default=2, ge=1, le=60)
    # Seconds a service has to stop after SIGTERM/SIGINT (or after deciding to stop itself); past
    # that the process logs ``stop_timeout`` and exits 1 anyway. Keep it below the supervisor's own
    # kill timeout (docker compose: ``stop_grace_period``).
    stop_grace: float = Field(default=10.0, gt=0, le=300)

    def nats_connect_url(self) -> str:
        """The URL to connect with: ``nats_url`` with FAO_NATS_USER/FAO_NATS_PASSWORD put in it when set."""
        if self.nats_user is None:
            return self.nats_url
        password = self.nats_password.get_secret_value() if self.nats_password is not None else ""
        return with_credentials(self.nats_url, self.nats_user, password)

    def nats_username(self) -> str | None:
        """The NATS user this service connects as (FAO_NATS_USER, or the user in FAO_NATS_URL)."""
        return self.nats_user or url_user(self.nats_url)

    def nats_display_url(self) -> str:
        """``nats_url`` without credentials, for logs."""
        return redact(self.nats_url)
