"""Thai calendar formatting shared by the notifier and the reporter.

Dates are shown in Asia/Bangkok with Buddhist-era years (CE + 543) and Thai month names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

BANGKOK = ZoneInfo("Asia/Bangkok")
BE_OFFSET = 543

MONTHS_TH = (
    "มกราคม",
    "กุมภาพันธ์",
    "มีนาคม",
    "เมษายน",
    "พฤษภาคม",
    "มิถุนายน",
    "กรกฎาคม",
    "สิงหาคม",
    "กันยายน",
    "ตุลาคม",
    "พฤศจิกายน",
    "ธันวาคม",
)
MONTHS_TH_SHORT = (
    "ม.ค.",
    "ก.พ.",
    "มี.ค.",
    "เม.ย.",
    "พ.ค.",
    "มิ.ย.",
    "ก.ค.",
    "ส.ค.",
    "ก.ย.",
    "ต.ค.",
    "พ.ย.",
    "ธ.ค.",
)


def be_year(ce_year: int) -> int:
    return ce_year + BE_OFFSET


def format_thai_datetime(value: datetime) -> str:
    """``5 ต.ค. 2569 14:03 น.`` in Bangkok time."""
    local = value.astimezone(BANGKOK)
    return f"{local.day} {MONTHS_TH_SHORT[local.month - 1]} {be_year(local.year)} {local:%H:%M} น."


def format_thai_duration(delta: timedelta) -> str:
    """``2 วัน 3 ชม. 5 นาที``, ``45 วินาที``: the two or three largest non-zero units."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "วัน"), (hours, "ชม."), (minutes, "นาที")]
    shown = [f"{n} {unit}" for n, unit in parts if n]
    if not shown:
        return f"{seconds} วินาที"
    return " ".join(shown)
