"""The web face's words in Thai (default) and English (``templates/web_<lang>.yaml``), and how
times and durations are shown (Bangkok time; Buddhist-era years in Thai)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Final, Literal, get_args

import yaml

from fao.runtime.thai import format_thai_date, format_thai_datetime, format_thai_duration
from fao.schemas.maintenance import BANGKOK

Language = Literal["th", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
DEFAULT: Final[Language] = "th"


@cache
def catalogue(language: Language) -> dict[str, str]:
    """Every word of ``language``; the catalogues must name the same keys (checked here)."""
    loaded: dict[Language, dict[str, str]] = {}
    for lang in LANGUAGES:
        text = resources.files("fao.gateway").joinpath(f"templates/web_{lang}.yaml").read_text("utf-8")
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"templates/web_{lang}.yaml must map keys to texts")
        loaded[lang] = {str(k): v for k, v in data.items()}
    keys = {lang: set(words) for lang, words in loaded.items()}
    if keys["th"] != keys["en"]:
        raise ValueError(f"web catalogues differ in keys: {sorted(keys['th'] ^ keys['en'])}")
    return loaded[language]


def language_of(cookie: str | None) -> Language:
    return "en" if cookie == "en" else DEFAULT


def format_time(value: datetime | None, language: Language) -> str:
    if value is None:
        return "-"
    try:
        value.astimezone(BANGKOK)
    except OverflowError:  # within hours of year 9999's end (a window from the config): no Bangkok time
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if language == "th":
        return format_thai_datetime(value)
    return f"{value.astimezone(BANGKOK):%Y-%m-%d %H:%M} (UTC+7)"


def format_day(value: datetime, language: Language) -> str:
    """The Bangkok calendar day of ``value`` (the maintenance calendar's rows)."""
    day = value.astimezone(BANGKOK).date()
    return format_thai_date(day) if language == "th" else f"{day:%a %Y-%m-%d}"


def format_duration(value: timedelta, language: Language) -> str:
    if language == "th":
        return format_thai_duration(value)
    seconds = int(max(0, value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"
