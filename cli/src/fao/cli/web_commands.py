"""The ``fao tokens`` and ``fao users`` command groups (the gateway's API tokens and dashboard
users), added to ``fao`` by ``fao.cli.main``."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar, get_args

import typer
from nats.errors import Error as NatsError
from pymongo.errors import PyMongoError

from fao.cli import web_access
from fao.cli.web_access import AccessError
from fao.gateway.access import Role, new_password
from fao.runtime.brief import brief
from fao.runtime.settings import ServiceSettings

T = TypeVar("T")
UNREACHABLE: Final = (OSError, TimeoutError, PyMongoError, NatsError)
ROLE_HELP: Final = (
    "viewer (reads), operator (also acts on incidents and maintenance) or admin (also contact details)"
)

tokens = typer.Typer(help="API tokens for /api/v1 (bearer; shown once, stored hashed).", no_args_is_help=True)
users = typer.Typer(help="Dashboard users (argon2-hashed passwords).", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _role(value: str) -> Role:
    if value not in get_args(Role):
        raise _fail(f"unknown role {value!r}: {ROLE_HELP}")
    return value  # type: ignore[return-value]  # checked against Role's values just above


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except AccessError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None


def _when(value: object) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, datetime) else "-"


@tokens.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for (e.g. 'grafana', 'ticket system').")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "viewer",
    owner: Annotated[
        str | None, typer.Option(help="Who answers for it: the audit log's actor. Default: your login.")
    ] = None,
) -> None:
    """Create a token and print it once (keep it: only its hash is stored)."""
    settings = ServiceSettings()
    issued = _run(
        web_access.create_token(
            settings.mongo_url,
            settings.mongo_db,
            name=name,
            owner=owner or getpass.getuser(),
            role=_role(role),
            actor=getpass.getuser(),
            now=datetime.now(UTC),
        )
    )
    typer.echo(f"token {issued.token_id} ({role}) created; it is shown only now:")
    typer.echo(issued.token)


@tokens.command("list")
def tokens_list() -> None:
    """Every token: id, name, owner, role, created, revoked."""
    settings = ServiceSettings()
    docs = _run(web_access.list_tokens(settings.mongo_url, settings.mongo_db))
    if not docs:
        typer.echo("no tokens (fao tokens create --name NAME --role viewer)")
    for doc in docs:
        state = f"revoked {_when(doc.get('revoked_at'))}" if doc.get("revoked_at") else "active"
        typer.echo(
            f"{doc['_id']}  {doc.get('role', '?'):<8} {state:<26} {doc.get('name', '')} "
            f"(owner {doc.get('owner', '?')}, created {_when(doc.get('created_at'))})"
        )


@tokens.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (fao tokens list).")]) -> None:
    """Revoke a token: every request with it is refused from now on."""
    settings = ServiceSettings()
    changed = _run(
        web_access.revoke_token(
            settings.mongo_url, settings.mongo_db, token_id, actor=getpass.getuser(), now=datetime.now(UTC)
        )
    )
    typer.echo(f"revoked {token_id}" if changed else f"{token_id} was already revoked")


def _password(generate: bool) -> tuple[str, bool]:
    """A password typed twice on a terminal, or a generated one (printed once)."""
    if generate or not sys.stdin.isatty():
        return new_password(), True
    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return str(password), False


@users.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Sign-in name: lower-case letters, digits, . _ -")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "viewer",
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate a password and print it (also without a terminal).")
    ] = False,
) -> None:
    """Create a dashboard user."""
    settings = ServiceSettings()
    checked = _role(role)
    password, generated = _password(generate)
    _run(
        web_access.create_user(
            settings.mongo_url,
            settings.mongo_db,
            username,
            password,
            checked,
            actor=getpass.getuser(),
            now=datetime.now(UTC),
        )
    )
    typer.echo(f"user {username} ({role}) created")
    if generated:
        typer.echo(f"password (shown only now): {password}")


@users.command("passwd")
def users_passwd(
    username: Annotated[str, typer.Argument(help="The user.")],
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it.")] = False,
) -> None:
    """Set a new password; the user's sessions end."""
    settings = ServiceSettings()
    password, generated = _password(generate)
    _run(
        web_access.set_password(
            settings.mongo_url,
            settings.mongo_db,
            username,
            password,
            actor=getpass.getuser(),
            now=datetime.now(UTC),
        )
    )
    typer.echo(f"password of {username} changed; their sessions have ended")
    if generated:
        typer.echo(f"password (shown only now): {password}")


@users.command("delete")
def users_delete(username: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Delete a user; their sessions end."""
    settings = ServiceSettings()
    _run(
        web_access.delete_user(
            settings.mongo_url, settings.mongo_db, username, actor=getpass.getuser(), now=datetime.now(UTC)
        )
    )
    typer.echo(f"deleted {username}")


@users.command("list")
def users_list() -> None:
    """Every dashboard user and their role."""
    settings = ServiceSettings()
    docs = _run(web_access.list_users(settings.mongo_url, settings.mongo_db))
    if not docs:
        typer.echo("no users (fao users create NAME --role admin)")
    for doc in docs:
        typer.echo(f"{doc['_id']}  {doc.get('role', '?'):<8} created {_when(doc.get('created_at'))}")
