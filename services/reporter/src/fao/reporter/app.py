"""The reporter process: keeps ``report_facts`` current from the incident stream."""

from __future__ import annotations

import structlog
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage
from nats.js.api import DeliverPolicy

from fao.reporter.read_model import INDEXES, FactStore
from fao.runtime.consume import ACK_WAIT, ordered_pull, process, undecoded
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.runtime.settings import ServiceSettings
from fao.schemas import IncidentEvent
from fao.schemas import subjects as s

log = structlog.get_logger()
SERVICE = "reporter"


def build(settings: ServiceSettings | None = None) -> ServiceApp:
    settings = settings or ServiceSettings()
    broker = new_broker(settings)
    ready: dict[str, FactStore] = {}

    async def record(event: IncidentEvent) -> None:
        if await ready["facts"].record(event):
            log.info("fact_recorded", incident=event.incident.id, type=event.type)

    @broker.subscriber(
        s.INCIDENTS_SUBJECTS,
        stream=JStream(s.INCIDENTS_STREAM, declare=False),
        durable=s.REPORTER_CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        config=ConsumerConfig(ack_wait=ACK_WAIT),
        pull_sub=ordered_pull(),
        ack_policy=AckPolicy.MANUAL,
        decoder=undecoded,
        title="reporter/incidents",
        description="Every incident event; folded into the report read model.",
    )
    async def on_event(msg: NatsMessage) -> None:
        await process(broker, SERVICE, msg.raw_message, IncidentEvent, record)

    async def on_start(rt: Runtime) -> None:
        ready["facts"] = FactStore(rt.db)

    return ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start)
