"""``fao people export|forget <id>``: a person's data for a PDPA request, and its erasure.

A person's identifiers are their ``id``, ``name``, LINE user id, e-mail and phone (config). Both
commands search every collection that can hold them (``PERSONAL_COLLECTIONS``: incidents and their
timeline — who acknowledged or resolved —, deliveries and the outbox — rendered messages naming
them —, escalation step claims — their LINE id and e-mail as targets —, the reporter's facts,
LINE groups, and the Official Account's reports, pending reports and rate-limit slots), walking
each document's strings; and the fields that name a person by id (``ID_FIELDS``: who answered an
owner review):

- ``export`` prints the person's config and every place an identifier occurs (collection,
  document, field), as JSON;
- a person removed from the config by ``fao apply --prune`` is kept in ``people_departed`` (with
  ``departed_at``); ``fao doctor`` names those past the retention (``FAO_PEOPLE_RETENTION_DAYS``,
  default 365) for ``forget``;
- ``forget`` replaces every occurrence with one pseudonym (``former-member-<random>``: the same
  within this erasure, linked to nothing), deletes the person, remembers the id in
  ``people_forgotten`` (``fao apply`` then refuses to bring the person back from old files) and
  writes an audit entry naming only the id and the pseudonym.

Not rewritten: incident events already on the bus (``FAO_INCIDENTS`` keeps them up to 400 days;
``forget`` counts those that name the person) and the audit log (it holds no personal values:
``fao.runtime.audit``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import nats
from nats.js.api import DeliverPolicy
from pymongo.asynchronous.database import AsyncDatabase

from fao.cli.apply import DEPARTED, FORGOTTEN
from fao.cli.nats_errors import quiet
from fao.runtime import audit
from fao.runtime.inventory import PEOPLE, from_doc
from fao.runtime.owner_review import REVIEWS
from fao.runtime.store import Document, connect
from fao.schemas import Person
from fao.schemas import subjects as s

PERSONAL_COLLECTIONS: Final = (
    "incidents",
    "incident_timeline",
    "deliveries",
    "outbox",
    "report_facts",
    "escalations",
    "escalation_steps",
    "line_groups",
    "oa_reports",
    "oa_pending_reports",
    "oa_rate_slots",
)
# Fields that hold a person's id (not their name): (collection, field).
ID_FIELDS: Final = ((REVIEWS, "by"),)
# Identifiers shorter than this are not searched for inside other text (a two-letter name would
# match everywhere); they are still matched as whole values.
MIN_SUBSTRING: Final = 4


class PeopleError(Exception):
    """The request cannot be done (the message says why)."""


@dataclass
class Occurrence:
    collection: str
    doc_id: str
    path: str


@dataclass
class Found:
    person: Document
    occurrences: list[Occurrence] = field(default_factory=list)


def identifiers(person: Person) -> list[str]:
    values = [person.name, person.line_user_id, person.email, person.phone]
    return sorted({v for v in values if v}, key=len, reverse=True)


def _matches(text: str, needles: Iterable[str]) -> bool:
    return any(text == n or (len(n) >= MIN_SUBSTRING and n in text) for n in needles)


def _walk(value: Any, path: str, needles: list[str], found: list[str]) -> None:
    if isinstance(value, str):
        if _matches(value, needles):
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), needles, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", needles, found)


def _replace(value: Any, needles: list[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        for needle in needles:
            if value == needle or len(needle) >= MIN_SUBSTRING:
                value = value.replace(needle, pseudonym)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, needles, pseudonym) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, needles, pseudonym) for v in value]
    return value


async def _person(db: AsyncDatabase[Document], person_id: str) -> tuple[Document, Person]:
    doc = await db[PEOPLE].find_one({"_id": person_id}) or await db[DEPARTED].find_one({"_id": person_id})
    if doc is None:
        forgotten = await db[FORGOTTEN].find_one({"_id": person_id})
        if forgotten is not None:
            raise PeopleError(f"{person_id} was forgotten on {forgotten['at']:%Y-%m-%d}: nothing is left")
        raise PeopleError(f"no person {person_id!r} (see the people in your config)")
    return doc, from_doc(Person, {k: v for k, v in doc.items() if k != "departed_at"})


async def find(db: AsyncDatabase[Document], person_id: str) -> Found:
    doc, person = await _person(db, person_id)
    needles = identifiers(person)
    result = Found(person={k: v for k, v in doc.items() if k != "_id"})
    for collection in PERSONAL_COLLECTIONS:
        async for item in db[collection].find({}):
            paths: list[str] = []
            _walk({k: v for k, v in item.items() if k != "_id"}, "", needles, paths)
            result.occurrences.extend(Occurrence(collection, str(item["_id"]), p) for p in paths)
    for collection, name in ID_FIELDS:
        async for item in db[collection].find({name: person_id}, {"_id": 1}):
            result.occurrences.append(Occurrence(collection, str(item["_id"]), name))
    return result


async def export_person(mongo_url: str, mongo_db: str, person_id: str) -> str:
    client = connect(mongo_url)
    try:
        found = await find(client[mongo_db], person_id)
    finally:
        await client.close()
    return json.dumps(
        {
            "person": found.person,
            "occurrences": [o.__dict__ for o in found.occurrences],
        },
        ensure_ascii=False,
        indent=2,
        default=str,
    )


async def _bus_mentions(nats_url: str, needles: list[str]) -> int:
    """Incident events on the bus naming the person (read-only; an ordered consumer)."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2, error_cb=quiet)
    try:
        js = nc.jetstream()
        info = await js.stream_info(s.INCIDENTS_STREAM)
        last = info.state.last_seq
        if info.state.messages == 0:
            return 0
        sub = await js.subscribe(
            s.INCIDENTS_SUBJECTS, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        count = 0
        try:
            while True:
                msg = await sub.next_msg(timeout=5)
                if _matches(msg.data.decode("utf-8", "replace"), needles):
                    count += 1
                if msg.metadata.sequence.stream >= last:
                    return count
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


@dataclass
class Forgotten:
    pseudonym: str
    documents: int
    bus_events: int | None


async def forget_person(
    mongo_url: str, mongo_db: str, nats_url: str | None, person_id: str, actor: str
) -> Forgotten:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        doc, person = await _person(db, person_id)
        needles = identifiers(person)
        pseudonym = f"former-member-{secrets.token_hex(4)}"
        rewritten = 0
        for collection in PERSONAL_COLLECTIONS:
            async for item in db[collection].find({}):
                body = {k: v for k, v in item.items() if k != "_id"}
                paths: list[str] = []
                _walk(body, "", needles, paths)
                if paths:
                    await db[collection].replace_one(
                        {"_id": item["_id"]}, {"_id": item["_id"], **_replace(body, needles, pseudonym)}
                    )
                    rewritten += 1
        for collection, name in ID_FIELDS:
            renamed = await db[collection].update_many({name: person_id}, {"$set": {name: pseudonym}})
            rewritten += renamed.modified_count
        now = datetime.now(UTC)
        await db[FORGOTTEN].replace_one(
            {"_id": person_id}, {"_id": person_id, "at": now, "pseudonym": pseudonym}, upsert=True
        )
        await db[PEOPLE].delete_one({"_id": person_id})
        await db[DEPARTED].delete_one({"_id": person_id})
        await audit.record(
            db,
            audit.entry(
                at=now,
                actor=actor,
                source="cli",
                action="people.forget",
                changes=[audit.Change(PEOPLE, person_id, "remove", before=doc)],
                pseudonym=pseudonym,
                documents_rewritten=rewritten,
            ),
        )
    finally:
        await client.close()
    bus = None
    if nats_url is not None:
        try:
            bus = await _bus_mentions(nats_url, needles)
        except Exception:  # the erasure is done; the count is information only
            bus = None
    return Forgotten(pseudonym, rewritten, bus)
