"""``fao check``: the observations table, ``--url`` without config, push monitors, ``fao push-token``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fao.cli.main import app
from fao.schemas.checks import push_token_sha256


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 503 if self.path == "/down" else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_check_prints_the_verdict_and_an_observation_table(site: str) -> None:
    up = CliRunner().invoke(app, ["check", "--url", f"{site}/", "--timeout", "3"])
    assert up.exit_code == 0, up.output
    lines = up.output.splitlines()
    assert lines[0].startswith("adhoc [http] UP HTTP 200 in ")
    assert any(line.split()[:1] == ["connect"] and line.endswith(" ms") for line in lines[1:]), up.output
    assert any(line.split()[:2] == ["first", "byte"] for line in lines[1:]), up.output
    down = CliRunner().invoke(app, ["check", "--url", f"{site}/down", "--timeout", "3"])
    assert down.exit_code == 1
    assert down.output.startswith("adhoc [http] DOWN (http_status) HTTP 503 in ")


def test_bad_url_and_missing_arguments_are_one_line_errors() -> None:
    bad = CliRunner().invoke(app, ["check", "--url", "not a url"])
    assert bad.exit_code == 1
    assert "cannot check 'not a url'" in bad.output
    assert "Traceback" not in bad.output
    neither = CliRunner().invoke(app, ["check"])
    assert neither.exit_code == 1
    assert "give a monitor id or --url URL" in neither.output


def test_push_token_prints_a_token_and_its_hash(tmp_path: Path) -> None:
    answer = CliRunner().invoke(app, ["push-token"])
    assert answer.exit_code == 0
    fields = dict(line.split(":", 1) for line in answer.output.splitlines())
    token, digest = fields["token"].strip(), fields["token_sha256"].strip()
    assert push_token_sha256(token) == digest


def test_a_push_monitor_is_not_checked_from_here(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "all.yaml").write_text(
        "teams: [{id: ops, name: Ops}]\n"
        "systems: [{id: batch, name: Batch, team: ops}]\n"
        "monitors:\n"
        f"  - {{id: nightly, system: batch, interval: 1d, check: {{type: push, token_sha256: '{'0' * 64}'}}}}\n"
    )
    answer = CliRunner().invoke(app, ["check", "nightly", "--config", str(config)])
    assert answer.exit_code == 1
    assert "nightly is a push monitor" in answer.output
