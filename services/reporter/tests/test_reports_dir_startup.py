"""A reports folder the reporter cannot write (FAO_REPORTS_DIR) stops it at start with one line
naming the setting, exit 1 (was: it ran, claimed the month and logged a traceback at every look)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_reports_folder_that_cannot_be_written_is_one_line_and_exit_1(
    nats_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("x")
    folder = tmp_path / "a-file" / "reports"
    env = {
        **os.environ, "FAO_NATS_URL": nats_url, "FAO_MONGO_URL": mongo_url, "FAO_MONGO_DB": mongo_db_name,
        "FAO_REPORTS_DIR": str(folder), "FAO_HTTP_PORT": "-1", "FAO_LOG_FORMAT": "console",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "fao.reporter"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert f"cannot write reports to {folder} (Not a directory); set FAO_REPORTS_DIR" in output
    assert "report_claimed" not in output
