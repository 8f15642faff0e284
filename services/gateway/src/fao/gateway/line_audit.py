"""Audit entries of the changes people make in LINE (source ``line``): Acknowledge / Resolve
taps, Official Account reports sent to the correlator, owner review answers.

The change is made (or its command sent) first; a failed audit write is logged as a warning and
the change stands, as the CLI does for its incident commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fao.runtime import audit
from fao.runtime.store import Document

log = structlog.get_logger()


async def record(
    db: AsyncDatabase[Document],
    *,
    at: datetime,
    actor: str,
    action: str,
    changes: Sequence[audit.Change] = (),
    **details: Any,
) -> bool:
    """Write the entry; False (and a warning) when MongoDB did not take it."""
    try:
        await audit.record(
            db, audit.entry(at=at, actor=actor, source="line", action=action, changes=changes, **details)
        )
    except PyMongoError as exc:
        log.warning(
            "audit_not_written", action=action, actor=actor, error=f"{type(exc).__name__}: {exc}", **details
        )
        return False
    return True
