"""Errors as problem details (RFC 9457, ``application/problem+json``) for every error the web face
answers: our own (``Problem``), FastAPI's validation errors (422, with each invalid field), HTTP
errors from routing (404 unknown path, 405 wrong method) and anything unexpected (500, logged,
never a traceback in the answer). An app may also have a page for people (``ErrorPage``: the
dashboard's, for a browser asking for HTML); every other caller gets problem details.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from nats.errors import Error as NatsError
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger()

MEDIA_TYPE: Final = "application/problem+json"
TITLES: Final = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Temporarily unavailable",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Problem(Exception):  # noqa: N818 -- named after what it is answered as (RFC 9457)
    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, words: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.words = words  # the catalogue key a page for people says it with (else the status's)


ErrorPage = Callable[[Request, int, str | None, str | None], Response | None]
"""A page for people given the request, status, detail and catalogue key; None: problem details."""


def problem_response(
    status: int,
    detail: str | None,
    instance: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        title=TITLES.get(status, "Error"), status=status, detail=detail, instance=instance, errors=errors
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        out.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return jsonable_encoder(out)  # type: ignore[no-any-return]


def install(app: FastAPI, page: ErrorPage | None = None) -> None:
    """Answer every error of ``app`` as problem details (or as ``page``, when it gives one)."""

    def answer(
        request: Request,
        status: int,
        detail: str | None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        words: str | None = None,
    ) -> Response:
        shown = page(request, status, detail, words) if page is not None else None
        if shown is None:
            return problem_response(status, detail, request.url.path, errors=errors, headers=headers)
        shown.headers.update(headers or {})
        return shown

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return answer(request, exc.status, exc.detail, headers=exc.headers, words=exc.words)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _field_errors(exc)
        first = errors[0] if errors else None
        detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first else "the request is not valid"
        return answer(request, 422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail: str | None = exc.detail if isinstance(exc.detail, str) else None
        if detail == TITLES.get(exc.status_code) or detail in ("Not Found", "Method Not Allowed"):
            detail = None
        headers = dict(exc.headers) if exc.headers else None
        return answer(request, exc.status_code, detail, headers=headers)

    async def _unavailable(request: Request, exc: Exception) -> Response:
        log.warning("web_store_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return answer(request, 503, "MongoDB or NATS is not answering; try again")

    for kind in (PyMongoError, NatsError, TimeoutError, ConnectionError):
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("web_request_failed", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return answer(request, 500, "the server could not answer this request")
