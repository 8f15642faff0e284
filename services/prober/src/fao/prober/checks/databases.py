"""Database checks: PostgreSQL (asyncpg), MySQL/MariaDB (aiomysql), Redis (redis-py), MongoDB (PyMongo).

Each check opens a new connection, authenticates with the password read from the environment
variable the config names (``password_env``; never the password itself), optionally runs the
configured query and compares the first value of its first row — as text — with ``expected``,
then closes the connection. The password never appears in a detail: details are built from the
driver's error class and message, which name the user, not the secret.

=====================================  ======================
outcome                                ErrorKind
=====================================  ======================
no answer within the timeout           ``TIMEOUT``
refused / unreachable / name unknown   ``CONNECTION_REFUSED`` / ``CONNECTION_ERROR`` / ``DNS``
credentials refused                    ``AUTH``
the query fails                        ``PROTOCOL``
the value is not ``expected``           ``UNEXPECTED_ANSWER``
the named secret is not set            ``INTERNAL``
=====================================  ======================
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomysql
import asyncpg
import pymysql
import redis.asyncio
import redis.exceptions
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fao.prober.checks.addresses import close_stream
from fao.prober.checks.contract import (
    MissingSecretError,
    Outcome,
    classify_os_error,
    describe_exception,
    elapsed_ms,
    secret,
    short_detail,
)
from fao.schemas import ErrorKind, MongoCheck, MysqlCheck, Observations, PostgresCheck, RedisCheck
from fao.schemas.jsonpath import as_text

# MySQL error numbers that mean "who you are": access denied, unknown user, plugin refused.
_MYSQL_AUTH_ERRORS = frozenset({1044, 1045, 1698, 2059, 1251})


class _CheckProblemError(Exception):
    """A classified failure raised inside a check body (kind, detail)."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


async def _checked(
    body: Callable[[], Awaitable[object | None]],
    expected: str | None,
    timeout: float,  # noqa: ASYNC109 - the check's own timeout, reported as data
    classify: Callable[[Exception], tuple[ErrorKind, str]],
) -> Outcome:
    """Run ``body`` (which returns the query's value, or ``None`` without a query) under ``timeout``
    and turn what happens into an ``Outcome``."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            value = await body()
    except TimeoutError:
        return Outcome.failure(ErrorKind.TIMEOUT, f"timed out after {timeout:g}s", elapsed_ms(started))
    except MissingSecretError as exc:
        return Outcome.failure(ErrorKind.INTERNAL, str(exc), elapsed_ms(started))
    except _CheckProblemError as exc:
        return Outcome.failure(exc.kind, exc.detail, elapsed_ms(started))
    except Exception as exc:  # each driver's exceptions are translated to data here
        kind, detail = classify(exc)
        return Outcome.failure(kind, detail, elapsed_ms(started))
    latency = elapsed_ms(started)
    if value is None:
        return Outcome.success(latency)
    answer = value if isinstance(value, str) else as_text(value)
    observations = Observations(answer=answer[:500])
    if expected is not None and answer != expected:
        return Outcome.failure(
            ErrorKind.UNEXPECTED_ANSWER,
            f"expected {expected!r}, got {answer[:100]!r}",
            latency,
            observations=observations,
        )
    return Outcome.success(latency, observations=observations)


def _common(exc: Exception) -> tuple[ErrorKind, str] | None:
    if isinstance(exc, OSError):
        return classify_os_error(exc)
    return None


def _plain(value: object) -> object:
    """A driver's value as JSON can write it (bytes as text, decimals and dates as strings)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


class PostgresChecker:
    """Runs ``PostgresCheck`` specs with asyncpg."""

    async def run(self, spec: PostgresCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        async def body() -> object | None:
            connection = await asyncpg.connect(
                host=spec.host,
                port=spec.port,
                user=spec.user,
                password=secret(spec.password_env),
                database=spec.database,
                ssl=spec.tls,
                timeout=timeout,
                command_timeout=timeout,
            )
            try:
                if spec.query is None:
                    return None
                row = await connection.fetchrow(spec.query)
                if row is None or len(row) == 0:
                    raise _CheckProblemError(ErrorKind.UNEXPECTED_ANSWER, "the query returned no row")
                return _plain(row[0])
            finally:
                await connection.close(timeout=1.0)

        def classify(exc: Exception) -> tuple[ErrorKind, str]:
            common = _common(exc)
            if common is not None:
                return common
            if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
                return ErrorKind.AUTH, describe_exception(exc)
            if isinstance(exc, asyncpg.PostgresError):
                return ErrorKind.PROTOCOL, describe_exception(exc)
            return ErrorKind.INTERNAL, describe_exception(exc)

        return await _checked(body, spec.expected, timeout, classify)

    async def aclose(self) -> None:
        return None


class MysqlChecker:
    """Runs ``MysqlCheck`` specs with aiomysql (MySQL and MariaDB)."""

    async def run(self, spec: MysqlCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        async def body() -> object | None:
            connection = await aiomysql.connect(
                host=spec.host,
                port=spec.port,
                user=spec.user,
                password=secret(spec.password_env) or "",
                db=spec.database,
                connect_timeout=timeout,
            )
            try:
                if spec.query is None:
                    return None
                async with connection.cursor() as cursor:
                    await cursor.execute(spec.query)
                    row = await cursor.fetchone()
                if not row:
                    raise _CheckProblemError(ErrorKind.UNEXPECTED_ANSWER, "the query returned no row")
                return _plain(row[0])
            finally:
                connection.close()

        def classify(exc: Exception) -> tuple[ErrorKind, str]:
            if isinstance(exc, pymysql.err.OperationalError) and exc.args:
                code = exc.args[0]
                if code in _MYSQL_AUTH_ERRORS:
                    return ErrorKind.AUTH, describe_exception(exc)
                cause = exc.__cause__
                if code == 2003 and isinstance(cause, OSError):
                    return classify_os_error(cause)
                if code == 2003:
                    return ErrorKind.CONNECTION_ERROR, describe_exception(exc)
            common = _common(exc)
            if common is not None:
                return common
            if isinstance(exc, pymysql.err.MySQLError):
                return ErrorKind.PROTOCOL, describe_exception(exc)
            return ErrorKind.INTERNAL, describe_exception(exc)

        return await _checked(body, spec.expected, timeout, classify)

    async def aclose(self) -> None:
        return None


class RedisChecker:
    """Runs ``RedisCheck`` specs with redis-py's asyncio client."""

    async def run(self, spec: RedisCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        async def body() -> object | None:
            client = redis.asyncio.Redis(
                host=spec.host,
                port=spec.port,
                username=spec.user,
                password=secret(spec.password_env),
                db=spec.db,
                ssl=spec.tls,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
                single_connection_client=True,
            )
            try:
                reply: Any = await client.execute_command(*spec.command)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            finally:
                await client.aclose()
            if spec.command[0].upper() == "PING" and spec.expected is None:
                return "PONG" if reply is True else _plain(reply)
            return _plain(reply)

        def classify(exc: Exception) -> tuple[ErrorKind, str]:
            if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
                return ErrorKind.AUTH, describe_exception(exc)
            if isinstance(exc, redis.exceptions.ResponseError) and "NOAUTH" in str(exc):
                return ErrorKind.AUTH, describe_exception(exc)
            if isinstance(exc, redis.exceptions.TimeoutError):
                return ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
            if isinstance(exc, redis.exceptions.ConnectionError):
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, OSError):
                    return classify_os_error(cause)
                if "refused" in str(exc).lower():
                    return ErrorKind.CONNECTION_REFUSED, "connection refused"
                return ErrorKind.CONNECTION_ERROR, describe_exception(exc)
            if isinstance(exc, redis.exceptions.RedisError):
                return ErrorKind.PROTOCOL, describe_exception(exc)
            common = _common(exc)
            return common if common is not None else (ErrorKind.INTERNAL, describe_exception(exc))

        expected = spec.expected if spec.expected is not None or spec.command[0].upper() != "PING" else "PONG"
        return await _checked(body, expected, timeout, classify)

    async def aclose(self) -> None:
        return None


class MongoChecker:
    """Runs ``MongoCheck`` specs with PyMongo's asyncio client (MongoDB, FerretDB)."""

    async def run(self, spec: MongoCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        async def body() -> object | None:
            password = secret(spec.password_env)
            # PyMongo retries a server it cannot reach until its server selection timeout and then
            # reports an unknown name or a refused port as that timeout; one plain connection first
            # tells them apart at once (DNS, CONNECTION_REFUSED).
            _, writer = await asyncio.open_connection(spec.host, spec.port)
            await close_stream(writer)
            credentials: dict[str, Any] = {}
            if spec.user is not None:
                credentials = {"username": spec.user, "password": password, "authSource": spec.auth_source}
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                host=spec.host,
                port=spec.port,
                tls=spec.tls,
                directConnection=True,
                # below the check's timeout, so a refused connection is reported as such
                serverSelectionTimeoutMS=max(1, int(timeout * 700)),
                connectTimeoutMS=max(1, int(timeout * 700)),
                socketTimeoutMS=int(timeout * 1000),
                appname="fao-prober",
                **credentials,
            )
            try:
                reply = await client[spec.database].command(spec.command)
            finally:
                await client.close()
            if spec.field is None:
                return None
            value: Any = reply
            for part in spec.field.split("."):
                if not isinstance(value, dict) or part not in value:
                    raise _CheckProblemError(ErrorKind.UNEXPECTED_ANSWER, f"no {spec.field!r} in the reply")
                value = value[part]
            return _plain(value) if not isinstance(value, dict | list) else value

        def classify(exc: Exception) -> tuple[ErrorKind, str]:
            if isinstance(exc, mongo_errors.OperationFailure) and exc.code in (13, 18):
                return ErrorKind.AUTH, short_mongo(exc)
            if isinstance(exc, mongo_errors.ServerSelectionTimeoutError | mongo_errors.NetworkTimeout):
                text = str(exc)
                if "refused" in text.lower() or f"[Errno {errno.ECONNREFUSED}]" in text:
                    return ErrorKind.CONNECTION_REFUSED, "connection refused"
                return ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
            if isinstance(exc, mongo_errors.ConnectionFailure):
                return ErrorKind.CONNECTION_ERROR, short_mongo(exc)
            if isinstance(exc, mongo_errors.PyMongoError):
                return ErrorKind.PROTOCOL, short_mongo(exc)
            common = _common(exc)
            return common if common is not None else (ErrorKind.INTERNAL, describe_exception(exc))

        return await _checked(body, spec.expected, timeout, classify)

    async def aclose(self) -> None:
        return None


def short_mongo(exc: Exception) -> str:
    """PyMongo's messages carry a topology description after a comma; keep the first part."""
    return short_detail(f"{type(exc).__name__}: {str(exc).split(', Timeout:')[0].split(', full error:')[0]}")
