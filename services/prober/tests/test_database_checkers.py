"""The database checkers against real servers started here: PostgreSQL and MariaDB (Debian packages,
installed by .ci/run), Redis (the same), and FerretDB for MongoDB (the test plugin's ``mongo_url``,
and one of this module's with authentication on).

Each server gets a user ``fao`` whose password the check reads from ``FAO_TEST_DB_PASSWORD``. A
server whose program is not installed is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest

from fao.prober.checks.databases import MongoChecker, MysqlChecker, PostgresChecker, RedisChecker
from fao.runtime.launch import LaunchError, ferretdb_binary
from fao.schemas import ErrorKind, MongoCheck, MysqlCheck, PostgresCheck, RedisCheck

PASSWORD = "s3cret-Fao"
SECRET = "FAO_TEST_DB_PASSWORD"
WRONG_SECRET = "FAO_TEST_DB_WRONG_PASSWORD"


@pytest.fixture(autouse=True)
def _passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET, PASSWORD)
    monkeypatch.setenv(WRONG_SECRET, "not-the-password")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Until ``port`` accepts connections (the server is ready), or fail with the server's output."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a condition, not a fixed wait
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {within:g}s")


def _wait_ready(probe: list[str], process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Until ``probe`` exits 0 (the server accepts sessions, not only connections)."""
    deadline = time.monotonic() + within
    while subprocess.run(probe, check=False, capture_output=True).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server not ready after {within:g}s (exit code {process.returncode})")
        time.sleep(0.05)  # polling a condition, not a fixed wait


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _setup(command: list[str], run_as: dict[str, Any]) -> None:
    """Run a server's set-up program; its output is the error when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, **run_as)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")


def _as_service_user(name: str, folder: Path) -> dict[str, Any]:
    """Servers refuse to run as root: run them as their Debian system user, owning ``folder``."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(name)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@pytest.fixture(scope="module")
def server_folder() -> Iterator[Path]:
    """A folder the servers' own users can reach (pytest's tmp folders are private to root)."""
    with tempfile.TemporaryDirectory(prefix="fao-db-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        yield folder


def _program(name: str) -> str | None:
    """``name`` on PATH, or in /usr/sbin and /usr/bin (a PATH without sbin still finds mariadbd)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def _postgres_bin(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_port(server_folder: Path) -> Iterator[int]:
    initdb, server = _postgres_bin("initdb"), _postgres_bin("postgres")
    if initdb is None or server is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")
    folder = server_folder / "pg"
    folder.mkdir()
    (folder / "pw").write_text(PASSWORD)
    data = folder / "data"
    run_as = _as_service_user("postgres", folder) if os.geteuid() == 0 else {}
    _setup(
        [initdb, "-D", str(data), "-U", "fao", "--pwfile", str(folder / "pw"), "--auth=scram-sha-256"], run_as
    )
    port = _free_port()
    process = subprocess.Popen(
        [server, "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder), "-c", "fsync=off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **run_as,
    )  # fmt: skip
    ready = _postgres_bin("pg_isready")
    assert ready is not None
    try:
        _wait_listening(port, process)
        _wait_ready([ready, "-q", "-h", "127.0.0.1", "-p", str(port)], process)
        yield port
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def mariadb_port(server_folder: Path) -> Iterator[int]:
    install, server = _program("mariadb-install-db"), _program("mariadbd")
    if install is None or server is None:
        pytest.skip("MariaDB is not installed (Debian package mariadb-server; .ci/run installs it)")
    folder = server_folder / "mariadb"
    folder.mkdir()
    data = folder / "data"
    run_as = _as_service_user("mysql", folder) if os.geteuid() == 0 else {}
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    _setup(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *user],
        {},
    )  # fmt: skip
    if run_as:
        _as_service_user("mysql", folder)
    port = _free_port()
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--socket={folder / 'sock'}", f"--port={port}",
         "--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
         f"--pid-file={folder / 'pid'}", *user],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_listening(port, process)
        root = pymysql.connect(host="127.0.0.1", port=port, user="root", password="")
        with root.cursor() as cursor:
            cursor.execute("CREATE USER 'fao'@'%%' IDENTIFIED BY %s", (PASSWORD,))
            cursor.execute("CREATE DATABASE monitor")
            cursor.execute("GRANT ALL ON monitor.* TO 'fao'@'%'")
        root.close()
        yield port
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = _program("redis-server")
    if server is None:
        pytest.skip("Redis is not installed (Debian package redis-server; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD, "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_listening(port, process)
        yield port
    finally:
        _stop(process)


async def _mute_port() -> tuple[asyncio.Server, int]:
    """Accepts connections and never says a word (for timeouts)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# PostgreSQL


def _pg(port: int, **fields: Any) -> PostgresCheck:
    base = {"host": "127.0.0.1", "port": port, "user": "fao", "password_env": SECRET, "database": "postgres"}
    return PostgresCheck.model_validate({**base, **fields})


async def test_postgres_query_with_expected_value(postgres_port: int) -> None:
    outcome = await PostgresChecker().run(_pg(postgres_port, query="SELECT 40 + 2", expected="42"), 5.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert outcome.observations.answer == "42"
    assert (await PostgresChecker().run(_pg(postgres_port), 5.0)).ok


async def test_postgres_wrong_value_password_and_query(postgres_port: int) -> None:
    wrong = await PostgresChecker().run(_pg(postgres_port, query="SELECT 'read-only'", expected="ok"), 5.0)
    assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert wrong.detail == "expected 'ok', got 'read-only'"
    denied = await PostgresChecker().run(_pg(postgres_port, password_env=WRONG_SECRET), 5.0)
    assert denied.error_kind is ErrorKind.AUTH
    assert "not-the-password" not in denied.detail
    bad = await PostgresChecker().run(_pg(postgres_port, query="SELECT * FROM nowhere"), 5.0)
    assert bad.error_kind is ErrorKind.PROTOCOL


async def test_postgres_refused_timeout_and_missing_secret(closed_port: int) -> None:
    refused = await PostgresChecker().run(_pg(closed_port), 2.0)
    assert refused.error_kind is ErrorKind.CONNECTION_REFUSED
    server, port = await _mute_port()
    try:
        silent = await PostgresChecker().run(_pg(port), 0.3)
    finally:
        server.close()
    assert silent.error_kind is ErrorKind.TIMEOUT
    missing = await PostgresChecker().run(_pg(closed_port, password_env="FAO_TEST_NOT_SET"), 2.0)
    assert missing.error_kind is ErrorKind.INTERNAL
    assert missing.detail == (
        "environment variable FAO_TEST_NOT_SET (a secret named in the check) is not set on this prober"
    )


# MariaDB (mysql)


def _my(port: int, **fields: Any) -> MysqlCheck:
    base = {"host": "127.0.0.1", "port": port, "user": "fao", "password_env": SECRET, "database": "monitor"}
    return MysqlCheck.model_validate({**base, **fields})


async def test_mysql_query_with_expected_value(mariadb_port: int) -> None:
    outcome = await MysqlChecker().run(_my(mariadb_port, query="SELECT 6 * 7", expected="42"), 5.0)
    assert outcome.ok, outcome.detail
    assert (await MysqlChecker().run(_my(mariadb_port), 5.0)).ok


async def test_mysql_wrong_value_and_password(mariadb_port: int) -> None:
    wrong = await MysqlChecker().run(_my(mariadb_port, query="SELECT 'no'", expected="yes"), 5.0)
    assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
    denied = await MysqlChecker().run(_my(mariadb_port, password_env=WRONG_SECRET), 5.0)
    assert denied.error_kind is ErrorKind.AUTH
    assert "not-the-password" not in denied.detail


async def test_mysql_refused_and_timeout(closed_port: int) -> None:
    refused = await MysqlChecker().run(_my(closed_port), 2.0)
    assert refused.error_kind is ErrorKind.CONNECTION_REFUSED
    server, port = await _mute_port()
    try:
        silent = await MysqlChecker().run(_my(port), 0.3)
    finally:
        server.close()
    assert silent.error_kind is ErrorKind.TIMEOUT


# Redis


def _redis(port: int, **fields: Any) -> RedisCheck:
    return RedisCheck.model_validate({"host": "127.0.0.1", "port": port, "password_env": SECRET, **fields})


async def test_redis_ping_and_command_with_expected_value(redis_port: int) -> None:
    assert (await RedisChecker().run(_redis(redis_port), 3.0)).ok
    outcome = await RedisChecker().run(_redis(redis_port, command=["ECHO", "ready"], expected="ready"), 3.0)
    assert outcome.ok, outcome.detail
    wrong = await RedisChecker().run(_redis(redis_port, command=["ECHO", "busy"], expected="ready"), 3.0)
    assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert wrong.detail == "expected 'ready', got 'busy'"


async def test_redis_wrong_or_no_password_is_auth(redis_port: int) -> None:
    denied = await RedisChecker().run(_redis(redis_port, password_env=WRONG_SECRET), 3.0)
    assert denied.error_kind is ErrorKind.AUTH
    assert "not-the-password" not in denied.detail
    anonymous = await RedisChecker().run(_redis(redis_port, password_env=None), 3.0)
    assert anonymous.error_kind is ErrorKind.AUTH


async def test_redis_refused_and_timeout(closed_port: int) -> None:
    refused = await RedisChecker().run(_redis(closed_port), 2.0)
    assert refused.error_kind is ErrorKind.CONNECTION_REFUSED
    server, port = await _mute_port()
    try:
        silent = await RedisChecker().run(_redis(port), 0.3)
    finally:
        server.close()
    assert silent.error_kind is ErrorKind.TIMEOUT


# MongoDB (FerretDB)


def _mongo(url: str, **fields: Any) -> MongoCheck:
    parts = urlsplit(url)
    return MongoCheck.model_validate({"host": parts.hostname, "port": parts.port, **fields})


async def test_mongodb_ping_and_expected_field(mongo_url: str) -> None:
    assert (await MongoChecker().run(_mongo(mongo_url), 5.0)).ok
    spec = _mongo(mongo_url, database="fao_check_test", command={"ping": 1}, field="ok", expected="1.0")
    outcome = await MongoChecker().run(spec, 5.0)
    assert outcome.ok, outcome.detail
    wrong = await MongoChecker().run(spec.model_copy(update={"expected": "0"}), 5.0)
    assert wrong.error_kind is ErrorKind.UNEXPECTED_ANSWER
    absent = await MongoChecker().run(spec.model_copy(update={"field": "nothing.here"}), 5.0)
    assert absent.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert absent.detail == "no 'nothing.here' in the reply"


@pytest.fixture(scope="module")
def mongo_auth_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A FerretDB of its own with authentication on and one user ``fao`` (the session's has none)."""
    try:
        binary = ferretdb_binary(build=False)
    except LaunchError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("ferretdb-auth")
    (folder / "sqlite").mkdir()
    port = _free_port()
    process = subprocess.Popen(
        [str(binary), "--handler=sqlite", f"--sqlite-url=file:{folder}/sqlite/", f"--state-dir={folder}",
         f"--listen-addr=127.0.0.1:{port}", "--telemetry=disable", "--debug-addr=-", "--log-level=error",
         "--test-enable-new-auth", "--setup-database=admin", "--setup-username=fao",
         f"--setup-password={PASSWORD}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_listening(port, process)
        yield port
    finally:
        _stop(process)


async def test_mongodb_login_and_wrong_password_is_auth(mongo_auth_port: int) -> None:
    spec = MongoCheck(host="127.0.0.1", port=mongo_auth_port, user="fao", password_env=SECRET)
    outcome = await MongoChecker().run(spec, 5.0)
    assert outcome.ok, outcome.detail
    wrong = await MongoChecker().run(spec.model_copy(update={"password_env": WRONG_SECRET}), 5.0)
    assert wrong.error_kind is ErrorKind.AUTH, wrong.detail
    assert "not-the-password" not in wrong.detail
    anonymous = await MongoChecker().run(
        MongoCheck(host="127.0.0.1", port=mongo_auth_port, command={"listDatabases": 1}), 5.0
    )
    assert anonymous.error_kind is ErrorKind.AUTH, anonymous.detail


async def test_mongodb_unknown_command_is_protocol(mongo_url: str) -> None:
    outcome = await MongoChecker().run(_mongo(mongo_url, command={"noSuchCommand": 1}), 5.0)
    assert outcome.error_kind is ErrorKind.PROTOCOL


async def test_mongodb_refused_unknown_name_and_timeout(closed_port: int) -> None:
    """Refused and unknown names are told at once, even with a short timeout (PyMongo alone
    reports both as its server selection timeout)."""
    refused = await MongoChecker().run(MongoCheck(host="127.0.0.1", port=closed_port), 0.5)
    assert (refused.error_kind, refused.detail) == (ErrorKind.CONNECTION_REFUSED, "connection refused")
    unknown = await MongoChecker().run(MongoCheck(host="nowhere.invalid"), 0.5)
    assert unknown.error_kind is ErrorKind.DNS, unknown.detail
    server, port = await _mute_port()
    try:
        silent = await MongoChecker().run(MongoCheck(host="127.0.0.1", port=port), 0.3)
    finally:
        server.close()
    assert silent.error_kind is ErrorKind.TIMEOUT
