"""How long ``fao apply`` takes for a large inventory (real NATS + FerretDB).

Starts a nats-server and FerretDB on loopback in a temporary directory, writes an inventory of
MONITORS monitors as YAML files (default 10,000: 1,000 systems of 10 monitors each, six http,
two tcp and two dns checks per system, 20 teams, every third system depending on an earlier one,
one file per 50 systems plus ``teams.yaml``), and times each phase separately:

1. read + validate: ``fao.schemas.loader.load_inventory`` (YAML, models, references, cycles);
2. first apply (everything new), end to end;
3. re-apply with no change;
4. re-apply with 10 % of the monitors changed (their ``interval``);
5. ``fao apply --check DIR`` (config ↔ MongoDB ↔ KV drift; writes nothing).

Phases 2-5 run the real CLI entry: by default in this process, the Typer app ``fao.cli.main.app``
called with ``apply DIR --yes`` (the same function the ``fao`` script runs; its output, the plan,
is written to a buffer and counted), so the interpreter's start-up and imports are not in the
time; ``--subprocess`` runs ``python -m fao.cli apply DIR --yes`` instead (start-up included).
After each apply, outside its time, the monitors in MongoDB and in the KV bucket are counted
(they must be all; counting the documents makes FerretDB decode each of them, ≈5 s).
Prints seconds per phase and per 1,000 monitors.

    python bench/apply_inventory.py [--monitors 10000] [--per-system 10] [--subprocess] [--profile DIR]

``--profile DIR`` writes a cProfile of each in-process phase into DIR (``<phase>.prof``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats

from fao.runtime.bus import kv_keys, monitors_bucket
from fao.runtime.launch import start_ferretdb, start_nats
from fao.runtime.store import connect
from fao.schemas.loader import load_inventory
from fao.schemas.subjects import MONITORS_BUCKET

TEAMS = 20
SYSTEMS_PER_FILE = 50
DB = "bench"


def _monitor_yaml(system: int, j: int, changed: bool, status: str | None = None) -> str:
    """One monitor as the config files write it; ``changed`` alters every tenth one's interval;
    ``status`` (e.g. ``[200]``) is written as every http check's ``expected_status``."""
    monitor_id = f"s{system:05d}-m{j}"
    interval = "90s" if changed and j == 0 else "60s"
    head = f"  - id: {monitor_id}\n    system: s{system:05d}\n    name: Monitor {j} of system {system}\n"
    if j < 6:
        status_line = f"      expected_status: {status}\n" if status else ""
        if j == 1:
            status_line = "      expected_status: [200, 204]\n"
        keyword = f'      keyword: "service {system}"\n' if j == 2 else ""
        check = f"    check:\n      type: http\n      url: http://10.{system // 250}.{system % 250}.{j}/health\n{status_line}{keyword}"
    elif j < 8:
        check = f"    check: {{type: tcp, host: 10.{system // 250}.{system % 250}.{j}, port: {5000 + j}}}\n"
    else:
        check = (
            f"    check: {{type: dns, name: s{system}.example.go.th, record_type: A, resolver: 127.0.0.53}}\n"
        )
    zones = "    zones: [dc1, dr]\n" if j % 3 == 0 else "    zones: [dc1]\n"
    return f"{head}{check}    interval: {interval}\n    timeout: 5s\n{zones}"


def write_inventory(
    folder: Path, systems: int, per_system: int, *, changed: bool = False, status: str | None = None
) -> None:
    """Write (or rewrite) the inventory's YAML files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    teams = "".join(f"  - id: team{t:02d}\n    name: Team {t}\n" for t in range(TEAMS))
    (folder / "teams.yaml").write_text(f"teams:\n{teams}")
    for first in range(0, systems, SYSTEMS_PER_FILE):
        parts = ["systems:\n"]
        numbers = range(first, min(first + SYSTEMS_PER_FILE, systems))
        for n in numbers:
            depends = f"    depends_on: [s{n // 3:05d}]\n" if n % 3 == 0 and n > 0 else ""
            parts.append(
                f"  - id: s{n:05d}\n    name: System {n}\n    name_th: ระบบที่ {n}\n"
                f"    team: team{n % TEAMS:02d}\n{depends}"
            )
        parts.append("monitors:\n")
        parts.extend(_monitor_yaml(n, j, changed, status) for n in numbers for j in range(per_system))
        (folder / f"systems-{first // SYSTEMS_PER_FILE:03d}.yaml").write_text("".join(parts))


@contextlib.contextmanager
def profiled(directory: Path | None, phase: str) -> Iterator[None]:
    if directory is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        directory.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(directory / f"{phase}.prof"))


def run_cli(args: list[str], *, in_process: bool) -> tuple[int, int]:
    """Run ``fao <args>``; return its exit code and how many lines it printed."""
    if not in_process:
        out = subprocess.run(
            [sys.executable, "-m", "fao.cli", *args], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
        return out.returncode, len(out.stdout.splitlines())
    from fao.cli.main import app  # imported here: the CLI reads FAO_* settings when it runs

    buffer, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(errors):
        try:
            # Not standalone: a ``typer.Exit`` comes back as the exit code instead of exiting.
            returned = app(args, prog_name="fao", standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # the click/typer exit types in non-standalone mode
            exit_code = getattr(exc, "exit_code", None)
            code = exit_code if isinstance(exit_code, int) else 1
            if code:
                print(f"{type(exc).__name__}: {exc}", file=errors)
    if code:
        print(errors.getvalue()[-2000:], file=sys.stderr)
    return code, len(buffer.getvalue().splitlines())


async def _stored_counts(nats_url: str, mongo_url: str) -> tuple[int, int]:
    client = connect(mongo_url)
    nc = await nats.connect(nats_url)
    try:
        documents = await client[DB]["monitors"].count_documents({})
        js = nc.jetstream()
        await monitors_bucket(js)
        keys = len(await kv_keys(js, MONITORS_BUCKET))
        return documents, keys
    finally:
        await nc.close()
        await client.close()


def timed(label: str, monitors: int, action: Callable[[], str]) -> float:
    start = time.perf_counter()
    detail = action()
    seconds = time.perf_counter() - start
    print(f"{label:<28} {seconds:7.2f} s  {seconds / monitors * 1000:6.3f} s per 1,000 monitors  {detail}")
    return seconds


def run(monitors: int, per_system: int, in_process: bool, profile: Path | None, status: str | None) -> None:
    systems = max(1, monitors // per_system)
    total = systems * per_system
    with tempfile.TemporaryDirectory(prefix="fao-bench-") as tmp:
        folder = Path(tmp) / "config"
        write_inventory(folder, systems, per_system, status=status)
        nats_server = start_nats(Path(tmp) / "nats")
        ferret = start_ferretdb(Path(tmp) / "ferretdb")
        try:
            os.environ.update(FAO_NATS_URL=nats_server.url, FAO_MONGO_URL=ferret.url, FAO_MONGO_DB=DB)
            print(
                f"inventory: {systems:,} systems x {per_system} monitors = {total:,} monitors, {TEAMS} teams,"
                f" {len(list(folder.iterdir()))} files; CLI {'in this process' if in_process else 'as a subprocess'}"
            )

            def parse() -> str:
                with profiled(profile, "parse"):
                    inventory = load_inventory(folder)
                assert len(inventory.monitors) == total
                return f"({len(inventory.systems):,} systems)"

            def apply(phase: str) -> Callable[[], str]:
                def action() -> str:
                    with profiled(profile if in_process else None, phase):
                        code, lines = run_cli(["apply", str(folder), "--yes"], in_process=in_process)
                    if code != 0:
                        raise SystemExit(f"fao apply exited with {code}")
                    return f"({lines:,} lines printed)"

                return action

            def verify() -> None:
                documents, keys = asyncio.run(_stored_counts(nats_server.url, ferret.url))
                if documents != total or keys != total:
                    raise SystemExit(f"after apply: {documents} monitor documents, {keys} KV keys")

            def check() -> str:
                with profiled(profile if in_process else None, "check"):
                    code, _ = run_cli(["apply", "--check", str(folder)], in_process=in_process)
                if code != 0:
                    raise SystemExit(f"fao apply --check exited with {code}: drift")
                return "(no drift)"

            results = {"read + validate": timed("read + validate", total, parse)}
            results["first apply"] = timed("first apply (all new)", total, apply("first"))
            verify()
            results["no-change re-apply"] = timed("re-apply, no change", total, apply("same"))
            verify()
            write_inventory(folder, systems, per_system, changed=True, status=status)
            results["10 % changed"] = timed("re-apply, 10 % changed", total, apply("changed"))
            verify()
            results["check"] = timed("apply --check", total, check)
            print(
                "summary: "
                + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in results.items())
                + f" ({total:,} monitors, {os.cpu_count()} CPUs)"
            )
        finally:
            ferret.stop()
            nats_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--per-system", type=int, default=10, help="monitors per system (at most 10)")
    parser.add_argument("--subprocess", action="store_true", help="run `python -m fao.cli` per phase")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile per phase here")
    parser.add_argument(
        "--expected-status",
        default=None,
        help="write this expected_status on every http check, e.g. '[200]' (default: the model's default)",
    )
    args = parser.parse_args()
    # SIGTERM (a time limit) stops the servers too: it unwinds like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(
        args.monitors,
        min(10, max(1, args.per_system)),
        not args.subprocess,
        args.profile,
        args.expected_status,
    )


if __name__ == "__main__":
    main()
