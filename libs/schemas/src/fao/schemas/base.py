"""Shared building blocks: the strict base model, identifiers, durations and UTC timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    model_validator,
)

_SHARED_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
_SHARED_FIELDS_SETS_MAX = 4096


class FaoModel(BaseModel):
    """Base of every contract: immutable, unknown fields rejected (config files are read strictly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        """Instances given the same fields share one record of them. pydantic keeps a set of the
        given field names per instance: ≈730 bytes for a monitor or a check read from JSON, where
        every field is given (the KV bucket's values), two per monitor in a prober. Sharing is safe
        because the models are frozen: pydantic changes the set only on assignment, and
        ``model_copy`` copies it before updating."""
        if not self.model_config.get("frozen"):  # a subclass that allows assignment keeps its own
            return self
        fields = self.__pydantic_fields_set__
        key = frozenset(fields)
        shared = _SHARED_FIELDS_SETS.get(key)
        if shared is None:
            if len(_SHARED_FIELDS_SETS) < _SHARED_FIELDS_SETS_MAX:
                _SHARED_FIELDS_SETS[key] = fields
        elif shared is not fields:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self


class BusModel(FaoModel):
    """Base of every message read from the bus: immutable, unknown fields *ignored*, so a newer
    producer that adds an optional field never breaks an older consumer (docs/contracts.md)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def _share_fields_set(self) -> Self:  # type: ignore[override]  # a plain method on purpose: it removes the inherited validator
        """Not for messages: short-lived, and built on the prober's hot path (a plain method here
        replaces the inherited validator)."""
        return self


# Identifiers end up in NATS subjects and KV keys, so they are restricted to a safe alphabet.
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"),
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Accept ``30``, ``30s``, ``500ms``, ``5m``, ``1h`` or ``1d``; return seconds as a float.

    Anything else is passed through unchanged so pydantic reports its own, precise error.
    """
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or e.g. 500ms, 30s, 5m, 1h"
            )
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration)]


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]
