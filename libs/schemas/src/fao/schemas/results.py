"""What a prober publishes: one ``CheckResult`` per check, sent many at a time in a ``ResultBatch``.

A consumer of the results stream reads ``ResultMessage``: either body (older probers publish one
result per message; docs/contracts.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Discriminator, Field, RootModel, Tag

from fao.schemas.base import BusModel, Identifier, UtcDatetime


class ErrorKind(StrEnum):
    """Why a check failed; ``none`` when it succeeded. A small closed set: the human part is
    ``detail``. ``unexpected_answer``: the peer answered, but not what the check expects (DNS
    answer, query value, SNMP value, JSON path, SSH host key, banner); ``auth``: the peer refused
    the credentials. A reader that meets a kind it does not know treats it as ``internal``."""

    NONE = "none"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_ERROR = "connection_error"
    DNS = "dns"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    KEYWORD = "keyword"
    UNEXPECTED_ANSWER = "unexpected_answer"
    AUTH = "auth"
    PROTOCOL = "protocol"
    INTERNAL = "internal"

    @classmethod
    def _missing_(cls, value: object) -> ErrorKind:
        return cls.INTERNAL


class StepTiming(BusModel):
    """One step of a multi-step check (a journey's request): its name, time and whether it passed."""

    name: str = Field(max_length=100)
    ms: float = Field(ge=0)
    ok: bool


class Observations(BusModel):
    """What a check saw, typed, each field optional (a check fills what it measures). Readers ignore
    fields they do not know, so adding one is compatible. Times in milliseconds."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    first_byte_ms: float | None = None
    cert_expires_at: UtcDatetime | None = None
    cert_days_left: float | None = None
    answer: str | None = Field(default=None, max_length=500)
    """The value compared: DNS answers, a query's first value, an SNMP value, a JSON path's value."""
    banner: str | None = Field(default=None, max_length=300)
    packets_sent: int | None = None
    packets_received: int | None = None
    rtt_ms: float | None = None
    steps: list[StepTiming] = Field(default_factory=list, max_length=50)
    screenshot: str | None = Field(default=None, max_length=120)
    """A failing browser check's screenshot: its object name in the ``fao-screenshots`` object
    store (``subjects.screenshot_name``); absent when none was taken or it could not be stored."""


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
    observations: Observations | None = None  # added in 1.1 (optional)

    @property
    def msg_id(self) -> str:
        """Nats-Msg-Id: the same check published twice is stored once."""
        return f"{self.monitor_id}.{self.zone}.{self.prober_id}.{int(self.started_at.timestamp() * 1e6)}"


class ResultBatch(BusModel):
    """Many results of one prober in one message, on ``fao.results.batch.<zone>.<partition>``
    (``subjects.result_batch_subject``): every result's ``zone`` is the batch's, every monitor
    hashes to the subject's partition, and each monitor's results are in the order they were
    checked. ``batch_id`` is also the message's ``Nats-Msg-Id`` (``<prober>.<boot>.<seq>``: the
    prober's start time in µs and a counter), fixed when the batch is formed, so a publish retried
    is stored once."""

    schema_version: Literal[1] = 1
    prober_id: str
    zone: Identifier
    batch_id: str = Field(min_length=1)
    results: list[CheckResult] = Field(min_length=1)


def _message_kind(value: object) -> str:
    if isinstance(value, dict):
        return "batch" if "results" in value else "result"
    return "batch" if isinstance(value, ResultBatch) else "result"


class ResultMessage(RootModel[Annotated[
    Annotated[CheckResult, Tag("result")] | Annotated[ResultBatch, Tag("batch")],
    Discriminator(_message_kind),
]]):  # fmt: skip
    """The body of any message on the results stream: a ``ResultBatch`` (it has ``results``) or a
    single ``CheckResult`` (probers before batching; still accepted). ``results`` gives the checks
    it holds, in order."""

    @property
    def results(self) -> list[CheckResult]:
        root = self.root
        return root.results if isinstance(root, ResultBatch) else [root]
