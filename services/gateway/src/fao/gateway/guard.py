"""The web face's shared context and the role every route requires.

Each route of the gateway's app declares who may call it with exactly one of these dependencies:
``api_role(role)`` (a bearer token), ``user_role(role)`` (a dashboard session) or ``PUBLIC``
(the LINE webhook, which checks its own signature, the sign-in page, the status page). The
dependency carries the role in ``fao_role``; a test walks every route of the app and fails on
one without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway.access import Principal, Role, current_account, token_principal
from fao.gateway.outcomes import CommandOutcomes
from fao.gateway.problems import Problem
from fao.gateway.results_feed import RecentResults
from fao.gateway.sessions import SESSION_COOKIE, LoginLimiter, Session, Signer
from fao.gateway.settings import GatewaySettings
from fao.runtime.maintenance_windows import Publish
from fao.runtime.store import Document

ROLE_ATTRIBUTE: Final = "fao_role"


@dataclass(frozen=True)
class WebContext:
    """What the API, the dashboard and the status page use, once the service has started."""

    db: AsyncDatabase[Document]
    settings: GatewaySettings
    signer: Signer
    limiter: LoginLimiter
    outcomes: CommandOutcomes
    results: RecentResults
    publish_maintenance: Publish
    # The monitor states, followed live from the correlator's state bucket (``StateCatalog``).
    states: Mapping[str, Document]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Reads a failing browser check's screenshot by its object name (``fao.gateway.screenshots``);
    # None: not available (pages show none).
    read_screenshot: Callable[[str], Awaitable[bytes | None]] | None = None

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.web_session_ttl)


ContextGetter = Callable[[], WebContext | None]


def context_of(getter: ContextGetter) -> WebContext:
    ctx = getter()
    if ctx is None:
        raise Problem(503, "the gateway is starting", headers={"Retry-After": "1"})
    return ctx


def _mark(dependency: Callable[..., Awaitable[Any]], role: str) -> Any:
    setattr(dependency, ROLE_ATTRIBUTE, role)
    return Depends(dependency)


async def _public() -> None:
    return None


PUBLIC: Final = _mark(_public, "public")


# Declares the bearer scheme in the OpenAPI document; a missing or other header is ours to refuse.
BEARER: Final = HTTPBearer(
    auto_error=False, bearerFormat="fao_<id>_<secret>", description="fao tokens create"
)


def api_role(getter: ContextGetter, need: Role) -> Any:
    """A valid bearer token whose role is at least ``need``: 401 without one, 403 below it."""

    async def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Principal:
        ctx = context_of(getter)
        token = credentials.credentials.strip() if credentials is not None else None
        principal = await token_principal(ctx.db, token) if token else None
        if principal is None:
            raise Problem(
                401,
                "give a valid API token: Authorization: Bearer fao_… (fao tokens create)",
                headers={"WWW-Authenticate": 'Bearer realm="fao"'},
            )
        if not principal.may(need):
            raise Problem(
                403, f"this needs the {need} role; the token of {principal.name} is {principal.role}"
            )
        return principal

    return _mark(dependency, need)


class SignInRequired(Exception):  # noqa: N818 -- a redirect to the sign-in page, not an error
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session: Session


async def session_of(ctx: WebContext, request: Request) -> SignedIn | None:
    session = ctx.signer.read_session(request.cookies.get(SESSION_COOKIE), ctx.clock())
    if session is None:
        return None
    account = await current_account(ctx.db, session.username, session.epoch)
    if account is None:
        return None
    return SignedIn(Principal(account.username, account.role, "session"), session)


def user_role(getter: ContextGetter, need: Role) -> Any:
    """A signed-in dashboard user whose role is at least ``need``: the sign-in page without a
    session, 403 below the role."""

    async def dependency(request: Request) -> SignedIn:
        ctx = context_of(getter)
        signed = await session_of(ctx, request)
        if signed is None:
            raise SignInRequired(request.url.path)
        if not signed.principal.may(need):
            raise Problem(
                403, f"this needs the {need} role; {signed.principal.name} is {signed.principal.role}"
            )
        return signed

    return _mark(dependency, need)
