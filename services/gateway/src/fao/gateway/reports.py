"""Official Account reports: a person's 1:1 text message to the OA becomes a manual incident.

- A text message takes one of the user's report slots (``FAO_OA_REPORT_LIMIT`` per
  ``FAO_OA_REPORT_WINDOW`` seconds; over it: a polite reply and nothing else).
- No incident is open: the report goes to the correlator at once (``open_manual``, no system) and
  the user gets its reference (``FAO-XXXXXXXX``) in a reply.
- Incidents are open: the report is kept in ``oa_pending_reports`` and the reply offers the
  affected systems (their Thai names only: nothing internal such as host names reaches a
  citizen) as quick replies, plus "อื่น ๆ". Picking one adds the report as a ``note`` to that
  system's open incident (``open_manual`` with the system if it has none any more); "อื่น ๆ"
  sends ``open_manual`` without a system. A report nobody picks for within ``FAO_OA_PENDING_TIMEOUT`` is sent
  without a system by the housekeeping (no reply then: the token has expired).
- Every report sent is an audit entry (``fao.gateway.line_audit``: ``incident.open_manual`` or
  ``incident.note``, with the reference, system, incident and command id; the actor is the
  person's id when the sender is a person of the config, else the report's reference: the LINE
  user id of a citizen stays out of the log, which is never rewritten; not the text either).
- Every report sent is recorded in ``oa_reports`` (reference, LINE user id, incident id once the
  correlator applied it: the housekeeping reads it from the correlator's timeline entry of the
  command's event), so the notifier can push "fixed" to the user when the incident resolves.

A report's command id comes from the report id (the message's webhook event id), so a replay, a
second tap on the quick reply, or two replicas expiring the same pending report make one command.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import structlog

from fao.gateway import line_audit
from fao.gateway.commands import CommandSink, command_id, new_command, reference
from fao.gateway.events import WebhookEvent
from fao.gateway.line_api import MAX_QUICK_REPLIES, Choice, FollowUp, LineApi
from fao.gateway.postback import SystemPick, pick_data
from fao.gateway.replies import Replies
from fao.gateway.store import GatewayStore, PendingReport
from fao.schemas import PLATFORM_SYSTEM, command_event_id

log = structlog.get_logger()

# A report whose incident id is still unknown after this long is no longer looked for (the
# correlator refused it, e.g. its system was removed meanwhile).
LINK_HORIZON: Final = timedelta(days=1)


class Reports:
    def __init__(
        self,
        store: GatewayStore,
        commands: CommandSink,
        line: LineApi,
        replies: Replies,
        *,
        limit: int,
        window: timedelta,
        pending_timeout: timedelta,
    ) -> None:
        self._store = store
        self._commands = commands
        self._line = line
        self._replies = replies
        self._limit = limit
        self._window = window
        self._pending_timeout = pending_timeout

    def _reply(self, event: WebhookEvent, text: str, choices: list[Choice] | None = None) -> list[FollowUp]:
        token = event.reply_token
        if token is None:
            return []
        return [lambda: self._line.reply(token, text, choices or [])]

    async def on_message(self, event: WebhookEvent, user_id: str, now: datetime) -> list[FollowUp]:
        """A 1:1 message from ``user_id`` to the Official Account."""
        if event.text is None or not event.text.strip():
            return self._reply(event, self._replies.report_text_only)
        if not await self._store.take_rate_slot(user_id, now, self._limit, self._window):
            log.info("oa_report_rate_limited", user=user_id, limit=self._limit)
            minutes = max(1, math.ceil(self._window.total_seconds() / 60))
            return self._reply(event, self._replies.text("report_rate_limited", minutes=minutes))
        person = await self._store.person_by_line_user(user_id)
        report = PendingReport(
            id=event.event_id,
            user_id=user_id,
            text=event.text.strip(),
            created_at=event.at,
            person=person.name if person is not None else None,
        )
        choices = await self._choices(report.id)
        if choices:
            await self._store.save_pending(report)
            log.info("oa_report_pending", report=report.id, systems=len(choices) - 1)
            return self._reply(event, self._replies.report_pick_system, choices)
        ref = await self.submit(report, None, now)
        return self._reply(event, self._replies.text("report_received", reference=ref))

    async def on_pick(
        self, event: WebhookEvent, user_id: str, pick: SystemPick, now: datetime
    ) -> list[FollowUp]:
        """The user picked a system (or "other") from a report's quick reply."""
        report = await self._store.pending(pick.report_id)
        if report is None or report.user_id != user_id:
            done = await self._store.report_by_report_id(pick.report_id)
            if done is not None and done.get("user_id") == user_id:
                return self._reply(event, self._replies.text("report_received", reference=done["reference"]))
            return self._reply(event, self._replies.report_expired)
        system_id = pick.system_id
        if system_id is not None and await self._store.system(system_id) is None:
            system_id = None  # removed from the inventory meanwhile: reported without a system
        incident = await self._store.open_incident_of(system_id) if system_id is not None else None
        ref = await self.submit(report, system_id, now, incident_id=incident.id if incident else None)
        return self._reply(event, self._replies.text("report_received", reference=ref))

    async def submit(
        self, report: PendingReport, system_id: str | None, now: datetime, *, incident_id: str | None = None
    ) -> str:
        """Record the report, send it (a ``note`` on ``incident_id``, else ``open_manual``), forget
        the pending copy; its reference."""
        cid = command_id("report", report.id)
        ref = reference(cid)
        actor = report.person or self._replies.text("report_actor", reference=ref)
        await self._store.add_report(
            reference=ref, report_id=report.id, user_id=report.user_id, command_id=str(cid),
            system_id=system_id, incident_id=incident_id, now=now,
        )  # fmt: skip
        command = new_command(
            cid=cid, action="note" if incident_id else "open_manual", actor=actor, at=report.created_at,
            incident_id=incident_id, system_id=system_id, text=report.text,
        )  # fmt: skip
        await self._commands.send(command)
        person = await self._store.person_by_line_user(report.user_id)
        await line_audit.record(
            self._store.db, at=now, actor=person.id if person is not None else ref,
            action=f"incident.{command.action}", reference=ref, incident_id=incident_id, system_id=system_id,
            command_id=str(cid), outcome="queued",
        )  # fmt: skip
        await self._store.drop_pending(report.id)
        log.info("oa_report_sent", reference=ref, system=system_id, command_id=str(cid))
        return ref

    async def _choices(self, report_id: str) -> list[Choice]:
        incidents = sorted(await self._store.open_incidents(), key=lambda i: i.started_at, reverse=True)
        system_ids = list(dict.fromkeys(i.system_id for i in incidents if i.system_id != PLATFORM_SYSTEM))
        if not system_ids:
            return []
        systems = await self._store.systems()
        choices = [
            Choice(
                label=systems[sid].display_name_th,
                data=pick_data(report_id, sid),
                display=systems[sid].display_name_th,
            )
            for sid in system_ids
            if sid in systems
        ][: MAX_QUICK_REPLIES - 1]
        if not choices:
            return []
        other = self._replies.other_system
        return [*choices, Choice(label=other, data=pick_data(report_id, None), display=other)]

    async def housekeeping(self, now: datetime) -> None:
        """Send the reports nobody picked a system for; fill in the incident of sent reports."""
        for report in await self._store.expired_pending(now - self._pending_timeout):
            await self.submit(report, None, now)
        for doc in await self._store.unlinked_reports(now - LINK_HORIZON):
            event_id = str(command_event_id(UUID(str(doc["command_id"]))))
            incident_id = await self._store.incident_of_event(event_id)
            if incident_id is not None:
                await self._store.link_report(str(doc["_id"]), incident_id)
                log.info("oa_report_linked", reference=doc["_id"], incident=incident_id)
