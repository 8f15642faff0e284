"""The reporter process: keeps ``report_facts`` current from the incident stream."""

from __future__ import annotations

import structlog

from fao.reporter.read_model import INDEXES, FactStore
from fao.runtime.consume import subscribe
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

    subscribe(
        broker, SERVICE, subject=s.INCIDENTS_SUBJECTS, stream=s.INCIDENTS_STREAM,
        durable=s.REPORTER_CONSUMER, model=IncidentEvent, handler=record,
        max_deliveries=2880,  # about a day of a database outage before a fact is dead-lettered
        title="reporter/incidents",
        description="Every incident event; folded into the report read model.",
    )  # fmt: skip

    async def on_start(rt: Runtime) -> None:
        ready["facts"] = FactStore(rt.db)

    return ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start)
