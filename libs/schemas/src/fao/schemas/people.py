"""People, and how a team reaches them: escalation policies and delivery channels.

People are config like teams: ``people`` in the config files, written by ``fao apply`` to the
``people`` collection. A person's LINE user id is what lets the gateway recognise who tapped
"acknowledge" in a group, and what an escalation step pushes to. Contact details (LINE user id,
phone, e-mail) are personal data (PDPA): only the notifier, the gateway and admins read them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fao.schemas.base import FaoModel, Identifier, Seconds
from fao.schemas.events import Severity

# "U" + 32 hex digits: a LINE user id as webhooks give it.
LineUserId = Annotated[str, Field(pattern=r"^U[0-9a-f]{32}$")]
# A LINE group ("C…") or room ("R…") id.
LineChatId = Annotated[str, Field(pattern=r"^[CR][0-9a-f]{32}$")]
# Deliberately simple: one "@", no spaces; the SMTP server is the judge of the rest.
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
# The name of an environment variable holding a secret (never the secret itself).
SecretRef = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")]

ChannelName = Literal["line", "email", "webhook"]


class Person(FaoModel):
    """Someone who receives, acknowledges or resolves alerts."""

    schema_version: Literal[1] = 1
    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(max_length=200)] = ""
    teams: list[Identifier] = Field(default_factory=list)
    line_user_id: LineUserId | None = None
    email: EmailAddress | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ()-]{3,30}$")] | None = None


class EscalationStep(FaoModel):
    """``after`` an unacknowledged problem message, tell these people and groups (again every
    ``repeat_every`` while nobody acknowledges, at most ``repeat`` times)."""

    after: Annotated[Seconds, Field(ge=0, le=7 * 86400)]
    people: list[Identifier] = Field(default_factory=list)
    line_groups: list[LineChatId] = Field(default_factory=list)
    teams: list[Identifier] = Field(default_factory=list)
    """Other teams whose LINE groups are told (e.g. the director's team)."""
    repeat_every: Annotated[Seconds, Field(ge=60, le=7 * 86400)] | None = None
    repeat: Annotated[int, Field(ge=1, le=100)] = 3

    @model_validator(mode="after")
    def _someone(self) -> EscalationStep:
        if not (self.people or self.line_groups or self.teams):
            raise ValueError("an escalation step needs people, line_groups or teams to tell")
        return self


class EscalationPolicy(FaoModel):
    """Steps, in order of ``after``; an acknowledgement or the end of the problem cancels them."""

    steps: list[EscalationStep] = Field(min_length=1, max_length=20)
    severities: list[Severity] = Field(default_factory=lambda: list[Severity](["critical", "major"]))
    """Only incidents of these severities escalate (a minor one is told once)."""

    @model_validator(mode="after")
    def _ordered(self) -> EscalationPolicy:
        afters = [step.after for step in self.steps]
        if afters != sorted(afters):
            raise ValueError("escalation steps must be in order of 'after'")
        return self


class WebhookTarget(FaoModel):
    """A generic webhook: a JSON POST signed with HMAC-SHA256 (docs/contracts.md)."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]
    secret_env: SecretRef | None = None
    """The environment variable holding the signing secret; unsigned without one."""


class ChannelPolicy(FaoModel):
    """Where a team's alerts go first, and where when that fails."""

    primary: ChannelName = "line"
    fallbacks: list[ChannelName] = Field(default_factory=lambda: list[ChannelName](["email", "webhook"]))
    fallback_after: Annotated[int, Field(ge=1, le=100)] = 3
    """Failed attempts on the primary channel before the fallbacks are used too (a permanent
    error or an exhausted monthly LINE quota falls back at once)."""

    @model_validator(mode="after")
    def _distinct(self) -> ChannelPolicy:
        if self.primary in self.fallbacks or len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("channels must not repeat (primary included)")
        return self
