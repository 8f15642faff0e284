"""``GatewaySettings``: the gateway's configuration, read from ``FAO_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from fao.runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Defaults are documented in the README ("Settings").

    Without ``line_channel_secret`` no webhook can be verified: ``POST /line/webhook`` answers 503.
    Without ``line_channel_access_token`` replies and group look-ups are skipped (logged).
    """

    line_channel_secret: SecretStr | None = None
    line_channel_access_token: SecretStr | None = None
    line_api_base: str = "https://api.line.me"
    # Seconds for one LINE API request (reply, group summary, member count).
    line_timeout: float = Field(default=5.0, gt=0)
    # Where the public HTTP server (the webhook) listens; port 0 picks a free one (logged).
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=0, le=65535)
    # A webhook body larger than this is refused with 413 before it is read further (LINE's are
    # a few KiB).
    gateway_max_body: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # How long a webhook event id is remembered (a replay within it has no effect).
    webhook_event_retention: float = Field(default=7 * 86400.0, ge=3600)
    # Official Account reports: at most ``oa_report_limit`` per user per ``oa_report_window`` seconds.
    oa_report_limit: int = Field(default=3, ge=1, le=1000)
    oa_report_window: float = Field(default=600.0, ge=1)
    # A report waiting for the user to pick a system is sent without one after this many seconds.
    oa_pending_timeout: float = Field(default=600.0, ge=1)
    # Seconds between two runs of the housekeeping loop (pending reports, incident ids of reports,
    # forgetting old event ids and rate-limit slots).
    housekeeping_interval: float = Field(default=1.0, gt=0)
    # A refused command's reply is sent if the correlator's rejection arrives within this many
    # seconds (a LINE reply token is valid for about a minute).
    rejection_reply_window: float = Field(default=50.0, gt=0, le=60)
    # --- web face: API, dashboard, status page (README "Dashboard, API and status page") ---
    # Secret that signs session cookies and CSRF tokens; unset: one generated and shared by every
    # replica through MongoDB (``gateway_secrets``).
    web_secret: SecretStr | None = None
    # Session cookies carry the Secure flag (HTTPS only); false only for plain http on loopback
    # (``fao dev up``).
    web_cookie_secure: bool = True
    # A session lasts this many seconds after sign-in.
    web_session_ttl: float = Field(default=12 * 3600.0, ge=60, le=30 * 86400)
    # Sign-in attempts per user name and client address per window (seconds).
    login_limit: int = Field(default=5, ge=1, le=1000)
    login_window: float = Field(default=900.0, ge=1)
    # How long an acknowledge/resolve/note waits for the correlator's answer before the API says
    # 202 (queued).
    web_command_wait: float = Field(default=3.0, ge=0, le=30)
    # Embedded mode (``fao dev up``): the dashboard also shows the outbox.
    web_embedded: bool = False
    # Where the reporter writes report files (the reporter's FAO_REPORTS_DIR); downloads are served
    # only from inside it. Unset: reports are listed, not downloadable.
    reports_dir: Path | None = None
