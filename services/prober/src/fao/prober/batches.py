"""Results → ``ResultBatch`` messages: grouped by subject, closed by count, bytes or age. Pure and
synchronous: times are parameters (the sink passes its loop's clock, tests pass numbers).

Every result goes to the open batch of its subject, ``fao.results.batch.<zone>.<partition>``
(``fao.schemas.subjects.result_partition`` of its monitor's system), so a monitor's results stay
in one subject, in the order they were added, with those of the other monitors of its system. A batch closes

- when it holds ``max_count`` results,
- when the next result would take its message (body plus the ``Nats-Msg-Id`` header) over
  ``max_bytes`` (by default the results stream's limit, ``fao.runtime.bus.max_msg_size``): that
  result starts the subject's next batch,
- when the oldest result waiting in *any* open batch has waited ``max_delay`` seconds
  (``take_due``): then every open batch closes, so one flush carries all that is waiting.

A closed batch gets its id, ``<prober>.<boot>.<seq>`` (``boot``: the prober's start time in µs,
so a restarted prober never reuses an id inside the stream's dedupe window), which is also its
``Nats-Msg-Id``: the sink retries a failed publish with the same message, and JetStream stores it
once. A result whose message alone would be over ``max_bytes`` is refused by ``add`` (the stream
would refuse it); results are a few hundred bytes, so only a pathological detail gets there.

The body is assembled from each result's JSON, encoded once when it is added (the size check
needs it anyway): ``{"schema_version":1,"prober_id":…,"zone":…,"batch_id":…,"results":[…]}``,
which is what ``ResultBatch.model_dump_json`` would write, without encoding every result twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fao.runtime.bus import headers_size, max_msg_size
from fao.schemas import CheckResult
from fao.schemas.subjects import result_batch_subject, result_partition

MSG_ID = "Nats-Msg-Id"
_SEQ_DIGITS = 20  # room for any sequence number in the size accounting


@dataclass(frozen=True, slots=True)
class Batch:
    """One closed batch: a message ready to publish (and to retry exactly as it is)."""

    subject: str
    msg_id: str
    body: bytes
    count: int

    @property
    def headers(self) -> dict[str, str]:
        return {MSG_ID: self.msg_id}


@dataclass(slots=True)
class _Open:
    bodies: list[bytes] = field(default_factory=list)
    size: int = 0  # bytes of the bodies plus one comma each


class Batcher:
    """Open batches per subject of one prober (see the module docstring)."""

    def __init__(
        self,
        *,
        prober_id: str,
        zone: str,
        boot: int,
        max_count: int = 256,
        max_bytes: int | None = None,
        max_delay: float = 0.05,
    ) -> None:
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        if max_delay < 0:
            raise ValueError("max_delay must not be negative")
        self._zone = zone
        self._id_prefix = f"{prober_id}.{boot}."
        self._head = (
            f'{{"schema_version":1,"prober_id":{json.dumps(prober_id)},"zone":{json.dumps(zone)},"batch_id":'
        ).encode()
        self._max_count = max_count
        self._max_bytes = max_msg_size(result_batch_subject(zone, 0)) if max_bytes is None else max_bytes
        self._max_delay = max_delay
        # Everything in a message but the results: head, quoted id, `,"results":[`, `]}`, header.
        longest_id = self._id_prefix + "9" * _SEQ_DIGITS
        self._overhead = (
            len(self._head) + len(json.dumps(longest_id)) + len(b',"results":[]}')
            + headers_size({MSG_ID: longest_id})
        )  # fmt: skip
        self._open: dict[str, _Open] = {}
        self._oldest: float | None = None  # when the oldest result in an open batch was added
        self._seq = 0
        self.pending = 0
        """Results in open batches."""

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def add(self, result: CheckResult, now: float) -> list[Batch] | None:
        """Put ``result`` in its subject's open batch; the batches this closed (by count or bytes),
        or ``None`` when the result alone would be over ``max_bytes`` (it is not kept)."""
        body = result.model_dump_json().encode()
        cost = len(body) + 1
        if self._overhead + cost > self._max_bytes:
            return None
        subject = result_batch_subject(self._zone, result_partition(result.system_id))
        group = self._open.get(subject)
        closed: list[Batch] = []
        if group is None:
            group = self._open[subject] = _Open()
        elif self._overhead + group.size + cost > self._max_bytes:
            closed.append(self._close(subject, group))
            group = self._open[subject] = _Open()
        group.bodies.append(body)
        group.size += cost
        self.pending += 1
        if self._oldest is None:
            self._oldest = now
        if len(group.bodies) >= self._max_count:
            closed.append(self._close(subject, group))
            del self._open[subject]
            if not self._open:
                self._oldest = None
        return closed

    def due_at(self) -> float | None:
        """When the open batches are due (the oldest result's time plus ``max_delay``); ``None``
        when nothing is open."""
        return None if self._oldest is None else self._oldest + self._max_delay

    def take_due(self, now: float) -> list[Batch]:
        """Close every open batch if the oldest result in them has waited ``max_delay``."""
        due = self.due_at()
        if due is None or now < due:
            return []
        return self.close_all()

    def close_all(self) -> list[Batch]:
        """Close every open batch now (a flush at shutdown)."""
        closed = [self._close(subject, group) for subject, group in self._open.items()]
        self._open.clear()
        self._oldest = None
        return closed

    def _close(self, subject: str, group: _Open) -> Batch:
        self._seq += 1
        msg_id = f"{self._id_prefix}{self._seq}"
        body = b"".join(
            (self._head, json.dumps(msg_id).encode(), b',"results":[', b",".join(group.bodies), b"]}")
        )
        self.pending -= len(group.bodies)
        return Batch(subject, msg_id, body, len(group.bodies))
