"""``python -m fao.runtime.setup_bus``: create or update every Fao stream and config bucket, as the
NATS admin (``FAO_NATS_URL`` with ``FAO_NATS_USER``/``FAO_NATS_PASSWORD``), then exit.

Services connecting as least-privilege users (``FAO_NATS_MANAGE_STREAMS=false``) may not create
streams; they wait (``bus_not_ready``) until this, or ``fao apply``, has run. docker compose runs
it once as ``bus-init`` before the services start.
"""

from __future__ import annotations

import asyncio

import nats

from fao.runtime.bus import ensure_bus
from fao.runtime.logging import configure_logging
from fao.runtime.settings import ServiceSettings


async def setup(settings: ServiceSettings) -> None:
    nc = await nats.connect(settings.nats_connect_url(), connect_timeout=5, max_reconnect_attempts=5)
    try:
        await ensure_bus(nc.jetstream())
    finally:
        await nc.close()


def main() -> None:
    settings = ServiceSettings()
    configure_logging("setup-bus", settings.log_level, settings.log_format)
    asyncio.run(setup(settings))


if __name__ == "__main__":
    main()
