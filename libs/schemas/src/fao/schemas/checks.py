"""Per-type check settings: a discriminated union on ``type``.

Adding a check type means one model here, one entry in ``CheckSpec`` and a checker plug-in in the
prober's registry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, HttpUrl, model_validator

from fao.schemas.base import FaoModel


class HttpCheck(FaoModel):
    """HTTP(S) request; up when the status is expected and the keyword rule holds."""

    type: Literal["http"] = "http"
    url: HttpUrl
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: list(range(200, 400)), min_length=1
    )
    keyword: str | None = None
    keyword_absent: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True

    @model_validator(mode="after")
    def _keyword_rule(self) -> HttpCheck:
        if self.keyword_absent and self.keyword is None:
            raise ValueError("keyword_absent needs a keyword")
        return self


class TcpCheck(FaoModel):
    """TCP connect; up when the connection is accepted within the timeout."""

    type: Literal["tcp"] = "tcp"
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]


CheckSpec = Annotated[HttpCheck | TcpCheck, Field(discriminator="type")]
