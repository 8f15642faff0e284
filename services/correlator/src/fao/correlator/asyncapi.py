"""The AsyncAPI document of the public incident stream (``docs/asyncapi.yaml``).

Regenerate with ``python -m fao.correlator.asyncapi > docs/asyncapi.yaml``; a test fails when the
checked-in file is stale.
"""

from __future__ import annotations

import sys

from faststream.specification import AsyncAPI

from fao.correlator.app import CorrelatorSettings, build

DESCRIPTION = """\
Fao publishes every change of an incident on JetStream stream FAO_INCIDENTS, subject
fao.incidents.v1.<event type>. Messages are JSON IncidentEvent objects (schema below) with a
Nats-Msg-Id header equal to event_id: a subscriber that sees the same event_id twice may drop the
second. Create a durable consumer on the stream to receive every event at least once.
The stream keeps 400 days of history. Fields are only ever added (as optional); anything else
bumps schema_version and the v1 subject segment."""


def render() -> str:
    svc = build(CorrelatorSettings(nats_url="nats://127.0.0.1:4222"))
    spec = AsyncAPI(svc.broker, title="Fao incident stream", version="1.0.0", description=DESCRIPTION)
    return str(spec.to_specification().to_yaml())


if __name__ == "__main__":
    sys.stdout.write(render())
