"""``ReporterSettings``: the reporter's configuration, read from ``FAO_*`` environment variables.

Defaults are documented in services/reporter/README.md and the root README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from fao.reporter.formats import FORMATS
from fao.runtime.settings import ServiceSettings


class ReporterSettings(ServiceSettings):
    # Where scheduled reports are written (one file per format, named after the period). Unset:
    # the reporter keeps the read model only and produces no report by itself.
    reports_dir: Path | None = None
    # Last month's report is produced on this day of the month at this hour, Bangkok time.
    report_day: int = Field(default=1, ge=1, le=28)
    report_hour: int = Field(default=6, ge=0, le=23)
    # Comma-separated formats of the scheduled report (fao.reporter.formats.FORMATS).
    report_formats: str = "html,pdf,xlsx,json"
    report_language: Literal["th", "en"] = "th"
    report_thai_digits: bool = False
    # False: downtime inside maintenance windows is not downtime (printed as the report's rule).
    report_include_maintenance: bool = False
    report_worst: int = Field(default=10, ge=0, le=100)
    # Seconds between two looks at whether a report is due.
    report_check_interval: float = Field(default=60.0, gt=0)
    # A report claimed but not finished after this many seconds (its reporter died) is taken over.
    report_claim_timeout: float = Field(default=1800.0, gt=0)
    # The management LINE group that gets the short summary; unset: no push.
    report_line_group: str | None = None
    # URL prefix under which reports_dir is published; unset: the summary names the PDF's path.
    report_link_base: str | None = None
    line_channel_access_token: SecretStr | None = None
    line_api_base: str = "https://api.line.me"
    line_timeout: float = Field(default=10.0, gt=0)
    # Attempts of the summary push (same retry key each time) before it is recorded as failed.
    report_line_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("report_formats")
    @classmethod
    def _known_formats(cls, value: str) -> str:
        """Refused at start: an unknown format would only fail on the 1st of the month."""
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in FORMATS]
        if unknown or not names:
            raise ValueError(f"report formats {value!r}: use one or more of {', '.join(FORMATS)}")
        return value

    def formats(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.report_formats.split(",") if name.strip())
