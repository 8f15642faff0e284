"""Inventory models: teams, systems and monitors as written in the config files."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fao.schemas.base import FaoModel, Identifier, Seconds
from fao.schemas.checks import CheckSpec
from fao.schemas.events import Severity
from fao.schemas.people import ChannelPolicy, EmailAddress, EscalationPolicy, WebhookTarget

# A LINE group id is "C" + 32 hex digits (rooms start with "R", users with "U").
LineTarget = Annotated[str, Field(pattern=r"^[CRU][0-9a-f]{32}$")]


class StormSettings(FaoModel):
    """A team's own storm-digest limits for its LINE groups (the notifier's ``FAO_STORM_BUDGET``
    and ``FAO_STORM_WINDOW`` otherwise): at most ``budget`` messages one by one per ``window``,
    the rest of the window as one digest; ``budget: 0`` turns storm digests off for the team."""

    budget: Annotated[int, Field(ge=0, le=1000)] | None = None
    window: Annotated[Seconds, Field(ge=1, le=3600)] | None = None


class Team(FaoModel):
    """People responsible for systems, and where their alerts go."""

    schema_version: Literal[1] = 1
    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    line_groups: list[LineTarget] = Field(default_factory=list)
    # Runs Fao itself: receives zone problems and silent-prober incidents (not ministry outages).
    platform: bool = False
    # Second channels (fallbacks, or the primary when ``channels.primary`` says so).
    email: list[EmailAddress] = Field(default_factory=list)
    webhooks: list[WebhookTarget] = Field(default_factory=list)
    channels: ChannelPolicy = Field(default_factory=ChannelPolicy)
    escalation: EscalationPolicy | None = None
    # Storm digests of this team's LINE groups, when they differ from the notifier's settings.
    storm: StormSettings | None = None


class System(FaoModel):
    """A service the ministry runs (portal, e-service, mail...); monitors belong to one."""

    schema_version: Literal[1] = 1
    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    name_th: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    team: Identifier
    severity: Severity = "major"
    depends_on: list[Identifier] = Field(default_factory=list)
    # Availability the system must reach each month, in percent (the monthly report says met/missed).
    sla_target: Annotated[float, Field(gt=0, le=100)] | None = None
    # Shown on the public status page (``/status``), under ``public_name_th`` when given (a name
    # citizens know, never an internal one), else ``name_th``/``name``.
    public: bool = False
    public_name_th: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @property
    def display_name_th(self) -> str:
        return self.name_th or self.name

    @property
    def public_display_name(self) -> str:
        return self.public_name_th or self.display_name_th


class ConfirmPolicy(FaoModel):
    """X-of-Y confirmation: down when ``failures`` of the last ``of`` results failed."""

    failures: Annotated[int, Field(ge=1, le=20)] = 2
    of: Annotated[int, Field(ge=1, le=20)] = 3

    @model_validator(mode="after")
    def _failures_within_window(self) -> ConfirmPolicy:
        if self.failures > self.of:
            raise ValueError(f"failures ({self.failures}) cannot exceed of ({self.of})")
        return self


class Monitor(FaoModel):
    """One check of one system, run by the probers of each listed zone."""

    schema_version: Literal[1] = 1
    id: Identifier
    system: Identifier
    name: Annotated[str, Field(max_length=200)] | None = None
    check: CheckSpec
    interval: Annotated[Seconds, Field(ge=0.2, le=86400)] = 60.0
    timeout: Annotated[Seconds, Field(gt=0, le=120)] = 10.0
    recheck_interval: Annotated[Seconds, Field(ge=0.1, le=3600)] = 10.0
    confirm: ConfirmPolicy = Field(default_factory=ConfirmPolicy)
    recover_after: Annotated[int, Field(ge=1, le=20)] = 1
    zones: list[Identifier] = Field(default_factory=lambda: ["default"], min_length=1)
    # Zones that must confirm a failure before it is an outage; default: a majority of ``zones``.
    quorum: Annotated[int, Field(ge=1, le=20)] | None = None
    # How long a recovered monitor must stay up before its incident is resolved (and the
    # "resolved" message sent); a failure within it continues the same incident. Default:
    # twice the interval, at least 30 s and at most 10 min (``effective_quiet_period``).
    quiet_period: Annotated[Seconds, Field(ge=0, le=86400)] | None = None
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Monitor:
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout}s) must not exceed interval ({self.interval}s)")
        if len(set(self.zones)) != len(self.zones):
            raise ValueError("zones must not repeat")
        if self.check.type == "push" and len(self.zones) != 1:
            raise ValueError("a push monitor has one zone (its heartbeats are not checked from zones)")
        if self.quorum is not None and self.quorum > len(self.zones):
            raise ValueError(f"quorum ({self.quorum}) cannot exceed the number of zones ({len(self.zones)})")
        return self

    @property
    def effective_quorum(self) -> int:
        return self.quorum or len(self.zones) // 2 + 1

    @property
    def effective_quiet_period(self) -> float:
        if self.quiet_period is not None:
            return self.quiet_period
        return min(600.0, max(30.0, 2 * self.interval))

    @property
    def confirm_time(self) -> float:
        """The longest a failing target can take to be confirmed down: the next scheduled check
        plus a full window of re-checks, each up to the timeout."""
        return self.interval + self.timeout + self.confirm.of * (self.recheck_interval + self.timeout)
