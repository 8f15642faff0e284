"""The notifier process: incident events in, LINE messages (or outbox entries) out.

One durable pull consumer (``notifier-incidents``) on the incident stream, manual acks through
``fao.runtime.consume.process``: an event is acknowledged once its deliveries are recorded in
``deliveries`` (or it needs none); recording that fails naks it for redelivery; a body that is not
an ``IncidentEvent`` is dead-lettered. The deliveries are then sent by per-group workers
(``fao.notifier.workers``), in order per incident.

One active instance (``singleton``: the KV lease ``lease.notifier``; a second process is a hot
standby): one sender per LINE group is what keeps an incident's messages in order.
"""

from __future__ import annotations

import structlog

from fao.notifier import deliveries, digest, escalation, outbox
from fao.notifier.channels.registry import ChannelContext, ChannelRegistry
from fao.notifier.digest import StormPolicy
from fao.notifier.dispatcher import Notifier, utc_now
from fao.notifier.line_channel import LineChannel
from fao.notifier.outbox import Outbox
from fao.notifier.quota import LineQuotaApi, QuotaWatch
from fao.notifier.render import load_catalogue
from fao.notifier.review import ReviewSchedule
from fao.notifier.settings import NotifierSettings
from fao.runtime.consume import subscribe
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.schemas import Command, IncidentEvent
from fao.schemas import subjects as s

log = structlog.get_logger()

SERVICE = "notifier"
# Recording fails only while MongoDB does: with the 30 s back-off cap this is about a day of
# redeliveries before the event goes to the dead letters (never silently dropped).
DELIVERY_ATTEMPTS = 2880
INDEXES = [*deliveries.INDEXES, *outbox.INDEXES, *escalation.INDEXES, *digest.INDEXES]

__all__ = ["INDEXES", "SERVICE", "NotifierSettings", "build"]


def build(settings: NotifierSettings | None = None) -> ServiceApp:
    """Wire the subscriber; nothing connects until ``serve`` (which calls ``on_start``)."""
    settings = settings or NotifierSettings()
    broker = new_broker(settings)
    catalogue = load_catalogue(settings.language)
    token = settings.line_channel_access_token
    line = (
        LineChannel(
            base_url=settings.line_api_base,
            access_token=token.get_secret_value(),
            timeout=settings.line_timeout,
        )
        if token is not None and token.get_secret_value()
        else None
    )
    quota_api = (
        LineQuotaApi(
            base_url=settings.line_api_base,
            access_token=token.get_secret_value(),
            timeout=settings.line_timeout,
        )
        if line is not None and token is not None
        else None
    )
    storm = StormPolicy(
        budget=settings.storm_budget or None,
        window=settings.storm_window,
        digest_only_window=settings.digest_only_window,
        max_listed=settings.digest_max_listed,
    )
    ready: dict[str, Notifier] = {}

    async def handle(event: IncidentEvent) -> None:
        await ready[SERVICE].handle(event)

    subscribe(
        broker, SERVICE, subject=s.INCIDENTS_SUBJECTS, stream=s.INCIDENTS_STREAM,
        durable=s.NOTIFIER_CONSUMER, model=IncidentEvent, handler=handle,
        max_deliveries=DELIVERY_ATTEMPTS,
        title="notifier/incidents",
        description=(
            "Incident events; a problem's start and end (and its acknowledgement) are sent to the "
            "LINE groups of the team that owns the cause."
        ),
    )  # fmt: skip

    async def deliveries_ok() -> bool:
        """/healthz: the delivery machinery runs (a standby has none yet, and that is fine).
        LINE failing is not a fault of this process: it shows on /metrics and in the outbox."""
        notifier = ready.get(SERVICE)
        return notifier is None or notifier.healthy()

    def delivery_figures() -> dict[str, object]:
        """/healthz details: deliveries waiting, the oldest one's age, groups failing."""
        notifier = ready.get(SERVICE)
        if notifier is None:
            return {"active": False}
        figures = notifier.figures()
        return {
            "active": True,
            "undelivered": figures.undelivered,
            "oldest_undelivered_s": round(figures.oldest_undelivered_s, 1),
            "failing_groups": len(figures.failing_groups),
            "failing_since": figures.failing_since.isoformat() if figures.failing_since else None,
            "escalations_active": notifier.escalations.active,
        }

    async def publish_command(command: Command) -> None:
        """A command of the notifier's own (LINE's monthly limit → one platform incident)."""
        await broker.publish(
            command,
            s.command_subject(command.action),
            stream=s.COMMANDS_STREAM,
            headers={"Nats-Msg-Id": str(command.command_id)},
            timeout=5.0,
        )

    async def on_start(rt: Runtime) -> None:
        if line is not None:
            await line.start()
        if quota_api is not None:
            await quota_api.start()
        notifier = Notifier(
            rt.db,
            sender=line,
            catalogue=catalogue,
            backoff_base=settings.line_backoff_base,
            backoff_max=settings.line_backoff_max,
            failing_after=settings.delivery_failing_after,
            sweep_interval=settings.delivery_sweep_interval,
            give_up_after=settings.delivery_give_up_after,
            channels=ChannelRegistry.builtin(
                ChannelContext(rt.db, utc_now, settings, line, publish=publish_command)
            ),
            storm=storm,
            review=ReviewSchedule(
                settings.review_day, settings.review_hour, settings.review_every_quarters
            ) if settings.review_enabled else None,
            quota=None if quota_api is None else QuotaWatch(
                rt.db, quota_api, outbox=Outbox(rt.db), catalogue=catalogue, clock=utc_now,
                refresh_interval=settings.quota_refresh_interval,
                refresh_after_send=settings.quota_refresh_after_send,
                low_remaining=settings.quota_low_remaining, low_forecast=settings.quota_low_forecast,
                digest_only_window=settings.digest_only_window,
            ),
        )  # fmt: skip
        await notifier.start()
        ready[SERVICE] = notifier
        if line is None:
            log.warning(
                "line_not_configured", hint="set FAO_LINE_CHANNEL_ACCESS_TOKEN; messages go to the outbox"
            )
        else:
            log.info("line_configured", api=settings.line_api_base, language=settings.language)

    async def on_stop(rt: Runtime) -> None:
        # serve() calls this while the broker still feeds the handler: drain first, so no
        # request in flight loses its HTTP session, then close the LINE client.
        notifier = ready.get(SERVICE)
        try:
            if notifier is not None:
                await notifier.drain(timeout=settings.line_timeout + 1.0)
        finally:
            if line is not None:
                await line.stop()
            if quota_api is not None:
                await quota_api.stop()

    return ServiceApp(
        SERVICE,
        settings,
        broker,
        indexes=INDEXES,
        on_start=on_start,
        on_stop=on_stop,
        extra_health={"deliveries": deliveries_ok},
        health_details=delivery_figures,
        singleton=True,
    )
