"""Settings common to every service, read from ``FAO_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses this and adds its own (documented in README)."""

    model_config = SettingsConfigDict(env_prefix="FAO_", extra="ignore", frozen=True)

    nats_url: str = "nats://127.0.0.1:4222"
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000"
    mongo_db: str = "fao"
    http_host: str = "127.0.0.1"
    # 0 picks a free port (the chosen port is logged); -1 disables /healthz and /metrics.
    http_port: int = 0
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
