"""``fao incidents``: what is broken now (or recently), one line per incident."""

from __future__ import annotations

from datetime import datetime

from fao.runtime.inventory import SYSTEMS, from_doc
from fao.runtime.store import connect
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import Incident, System

STATUS_TH = {"open": "ขัดข้อง", "acknowledged": "รับทราบแล้ว", "resolved": "แก้ไขแล้ว"}


def format_line(incident: Incident, system: System | None, now: datetime) -> str:
    name = system.display_name_th if system else incident.system_id
    end = incident.resolved_at or now
    return (
        f"{incident.id}  {STATUS_TH[incident.status]:<12} {name} — {incident.title}  "
        f"เริ่ม {format_thai_datetime(incident.started_at)}  นาน {format_thai_duration(end - incident.started_at)}"
    )


async def list_incidents(
    mongo_url: str, mongo_db: str, now: datetime, show_all: bool, limit: int
) -> list[str]:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        query = {} if show_all else {"status": {"$ne": "resolved"}}
        docs = await db["incidents"].find(query).sort("started_at", -1).limit(limit).to_list()
        systems = {doc["_id"]: from_doc(System, doc) for doc in await db[SYSTEMS].find({}).to_list()}
    finally:
        await client.close()
    incidents = [from_doc(Incident, doc) for doc in docs]
    return [format_line(i, systems.get(i.system_id), now) for i in incidents]
