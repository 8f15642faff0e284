"""Shared building blocks: the strict base model, identifiers, durations and UTC timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints


class FaoModel(BaseModel):
    """Base of every contract: immutable, unknown fields rejected (config files are read strictly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class BusModel(FaoModel):
    """Base of every message read from the bus: immutable, unknown fields *ignored*, so a newer
    producer that adds an optional field never breaks an older consumer (docs/contracts.md)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


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
