"""The audit log: who changed what, when, from where, with the fields before and after.

One collection, ``audit``, written only by inserts: Fao has no code path that updates or deletes
an entry (``fao audit`` only reads). Every writer goes through ``record``:

- ``fao apply`` (source ``apply``): one entry per apply, a change per object with its field diff;
- ``fao maintenance add|end`` (source ``cli``);
- ``fao incidents ack|resolve|note|open`` (source ``cli``: the command and the correlator's answer);
- ``fao people forget`` and ``fao tokens|users`` (source ``cli``);
- the gateway: API and dashboard commands, maintenance windows, report requests, tokens and users
  (source ``api`` / ``gateway``), and what people do in LINE (source ``line``,
  ``fao.gateway.line_audit``): Acknowledge / Resolve taps, Official Account reports sent to the
  correlator, owner review answers.

Personal data stays out of the log, so an erasure request (PDPA) never needs an entry changed: a
change to a person (``people``) records which fields changed, not their values.

An entry: ``at`` (UTC), ``actor``, ``source``, ``action``, ``changes`` (``collection``, ``key``,
``kind`` add/change/remove, ``diff``: field → ``{"before": …, "after": …}``; not a pair in
an array: FerretDB stores no nested arrays), and optional details
(``git_revision``, ``folder``, ``reason``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.inventory import AUDIT
from fao.runtime.store import Document

AuditSource = Literal["apply", "cli", "api", "line", "gateway"]
ChangeKind = Literal["add", "change", "remove"]

# Collections whose values are personal data: their diffs name the fields only.
PERSONAL: Final = frozenset({"people"})
HIDDEN: Final = "(personal data, not logged)"
# A value longer than this is shown shortened in a diff (a monitor's whole check, a long reason).
MAX_VALUE_CHARS: Final = 300


@dataclass(frozen=True)
class Change:
    collection: str
    key: str
    kind: ChangeKind
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None

    def diff(self) -> dict[str, dict[str, Any]]:
        """Field → ``{"before", "after"}`` for every top-level field that differs (``_id`` left out)."""
        before, after = self.before or {}, self.after or {}
        fields = [f for f in dict.fromkeys([*before, *after]) if f != "_id"]
        changed = [f for f in fields if before.get(f) != after.get(f)]
        if self.collection in PERSONAL:
            return {f: {"before": HIDDEN, "after": HIDDEN} for f in changed}
        return {f: {"before": before.get(f), "after": after.get(f)} for f in changed}

    def doc(self) -> Document:
        return {"collection": self.collection, "key": self.key, "kind": self.kind, "diff": self.diff()}


def entry(
    *,
    at: datetime,
    actor: str,
    source: AuditSource,
    action: str,
    changes: Sequence[Change] = (),
    **details: Any,
) -> Document:
    return {
        "at": at,
        "actor": actor,
        "source": source,
        "action": action,
        "changes": [change.doc() for change in changes],
        **details,
    }


async def record(db: AsyncDatabase[Document], doc: Document) -> None:
    """Append one entry (an insert: entries are never changed afterwards)."""
    await db[AUDIT].insert_one(doc)


async def read(
    db: AsyncDatabase[Document], since: datetime | None = None, limit: int = 100
) -> list[Document]:
    """The newest ``limit`` entries at or after ``since``, oldest first."""
    query: Document = {"at": {"$gte": since}} if since is not None else {}
    docs = await db[AUDIT].find(query).sort("at", -1).limit(limit).to_list()
    return list(reversed(docs))


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def describe_change(change: Mapping[str, Any]) -> list[str]:
    """``~ monitors/web: interval 30.0 → 45.0`` (one line per changed field of a change)."""
    sign = {"add": "+", "change": "~", "remove": "-"}.get(str(change.get("kind")), "?")
    head = f"{sign} {change.get('collection')}/{change.get('key')}"
    diff = change.get("diff") or {}
    if change.get("kind") != "change" or not isinstance(diff, Mapping):
        return [head]
    lines = [head]
    for field, pair in diff.items():
        values = pair if isinstance(pair, Mapping) else {}
        lines.append(f"    {field}: {_short(values.get('before'))} → {_short(values.get('after'))}")
    return lines
