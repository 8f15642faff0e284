"""What a prober publishes for every check it runs."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from fao.schemas.base import BusModel, Identifier, UtcDatetime


class ErrorKind(StrEnum):
    """Why a check failed; ``none`` when it succeeded."""

    NONE = "none"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_ERROR = "connection_error"
    DNS = "dns"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    KEYWORD = "keyword"
    PROTOCOL = "protocol"
    INTERNAL = "internal"


Attempt = Literal["scheduled", "recheck"]


class CheckResult(BusModel):
    """One check outcome. Failures are data (``error_kind``), never exceptions across services."""

    schema_version: Literal[1] = 1
    monitor_id: Identifier
    system_id: Identifier
    zone: Identifier
    prober_id: str
    started_at: UtcDatetime
    ok: bool
    latency_ms: float = Field(ge=0)
    error_kind: ErrorKind = ErrorKind.NONE
    detail: str = Field(default="", max_length=500)
    attempt: Attempt = "scheduled"
    http_status: int | None = None

    @property
    def msg_id(self) -> str:
        """Nats-Msg-Id: the same check published twice is stored once."""
        return f"{self.monitor_id}.{self.zone}.{self.prober_id}.{int(self.started_at.timestamp() * 1e6)}"
