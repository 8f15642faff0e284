"""The words of the notifier's notices about its channels, from ``templates/notices_<lang>.yaml``:

- ``line_quota_exhausted``: the report text of the platform incident raised when LINE's monthly
  limit is reached (``channels.monthly_limit``);
- ``target_broken``: the notice to the platform team when a target is marked broken
  (``broken``).

A catalogue with a missing text or an unknown ``{placeholder}`` fails at start-up.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import resources
from typing import Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fao.notifier.render import check_placeholders
from fao.notifier.settings import Language
from fao.runtime.thai import BANGKOK, format_thai_datetime

PLACEHOLDERS: Final = ("until", "since", "channel", "target", "team", "error")


class NoticeCatalogue(BaseModel):
    """The notice texts of one language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: Language
    line_quota_exhausted: str = Field(min_length=1, max_length=1500)
    target_broken: str = Field(min_length=1, max_length=1500)

    @model_validator(mode="after")
    def _known_placeholders(self) -> NoticeCatalogue:
        names = ("line_quota_exhausted", "target_broken")
        check_placeholders("", [(n, getattr(self, n)) for n in names], PLACEHOLDERS)
        return self

    def when(self, value: datetime) -> str:
        if self.language == "th":
            return format_thai_datetime(value)
        return value.astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M (Bangkok)")

    def quota_exhausted(self, until: datetime) -> str:
        return self._fill(self.line_quota_exhausted, until=self.when(until))

    def broken(self, *, channel: str, target: str, team: str, error: str, since: datetime) -> str:
        return self._fill(
            self.target_broken, channel=channel, target=target, team=team, error=error, since=self.when(since)
        )

    @staticmethod
    def _fill(template: str, **values: str) -> str:
        filled = dict.fromkeys(PLACEHOLDERS, "")
        filled.update(values)
        return " ".join(template.format_map(filled).split())


@cache
def load_notices(language: Language = "th") -> NoticeCatalogue:
    """The packaged notice catalogue of ``language``, validated."""
    source = resources.files("fao.notifier").joinpath("templates", f"notices_{language}.yaml")
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    return NoticeCatalogue.model_validate({"language": language, **data})
