"""Rebuild the read model by replaying the incident stream from its first message (`fao report
--rebuild`).

Every event still in ``FAO_INCIDENTS`` (kept 400 days) is read through an ordered consumer; the
newest event of each incident (by its time, then by stream order) becomes that incident's fact,
replacing whatever is stored (a damaged fact is repaired). Facts of incidents older than the
stream's retention are kept as they are. A message that is not an incident event is counted and
skipped. Without the stream (a server Fao never ran on) it says so (ValueError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from fao.reporter.read_model import FactStore
from fao.schemas import IncidentEvent
from fao.schemas import subjects as s

# Seconds to wait for the next message before deciding the stream has no more for us.
NEXT_TIMEOUT: Final = 5.0

Progress = Callable[[int, int], None]  # (messages read, messages in the stream)


@dataclass(frozen=True)
class ReplayResult:
    messages: int
    incidents: int
    facts_written: int
    unreadable: int


async def replay(js: JetStreamContext, store: FactStore, progress: Progress | None = None) -> ReplayResult:
    try:
        info = await js.stream_info(s.INCIDENTS_STREAM)
    except NotFoundError:
        raise ValueError(f"no stream {s.INCIDENTS_STREAM} on this NATS server: nothing to replay") from None
    total, last = info.state.messages, info.state.last_seq
    newest: dict[str, IncidentEvent] = {}
    read = unreadable = 0
    if total:
        sub = await js.subscribe(
            s.INCIDENTS_SUBJECTS,
            stream=s.INCIDENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=NEXT_TIMEOUT)
                read += 1
                try:
                    event = IncidentEvent.model_validate_json(msg.data)
                except ValidationError:
                    unreadable += 1
                else:
                    held = newest.get(event.incident.id)
                    if held is None or event.at >= held.at:
                        newest[event.incident.id] = event
                if progress is not None and (read % 500 == 0 or msg.metadata.sequence.stream >= last):
                    progress(read, total)
                if msg.metadata.sequence.stream >= last:
                    break
        finally:
            await sub.unsubscribe()
    written = await store.replace(list(newest.values()))
    return ReplayResult(messages=read, incidents=len(newest), facts_written=written, unreadable=unreadable)
