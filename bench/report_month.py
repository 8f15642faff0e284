"""How long one month's report takes for a large ministry: SYSTEMS systems × INCIDENTS incidents.

Generates the data in memory (deterministic, `--seed`): systems with Thai names in 20 teams, one
in ten with an SLA target; incidents spread over October 2026 with every severity and kind, one in
ten with a maintenance span, one in twenty suppressed under another system's incident, a few
still open and a few crossing into November. Then times each step of `fao report` after reading
the facts: figures (with the previous month's change), charts, and each format, and prints the
wall-clock and CPU time per format and HTML + PDF + XLSX together (the issue's budget: 15 s). On a
shared machine the wall-clock time depends on what else runs; CPU time is the steadier figure. The
files are written to a temporary folder (or `--out`). With `--store` the facts are first written to
a FerretDB started on loopback and the time to read them back (what `fao report` does before the
figures) is printed too.

    python bench/report_month.py [--systems 1000] [--incidents 10000] [--out DIR] [--store]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from fao.reporter.availability import IncidentFact, MaintenanceSpan, SystemInfo, summarize_with_previous
from fao.reporter.formats import RENDERERS, RenderContext
from fao.reporter.localize import Formatter
from fao.reporter.periods import ReportPeriod
from fao.reporter.read_model import FACTS, WRITE_CHUNK, FactStore, fact_document
from fao.runtime.launch import start_ferretdb
from fao.runtime.store import connect

PERIOD = ReportPeriod.parse("2026-10")
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
WORDS = ("ระบบ", "บริการ", "ข้อมูล", "บัญชี", "เงินเดือน", "ภาษี", "น้ำประปา", "ประจำ", "ผู้ใช้", "ทะเบียน")
KINDS = ("outage", "outage", "outage", "flapping", "slow", "manual")
SEVERITIES = ("critical", "major", "major", "minor")


def make_systems(count: int, rng: random.Random) -> list[SystemInfo]:
    return [
        SystemInfo(
            id=f"sys-{i:04d}",
            name=f"System {i}",
            name_th=f"{rng.choice(WORDS)}{rng.choice(WORDS)} {i}",
            team=f"team-{i % 20:02d}",
            team_name=f"ทีมที่ {i % 20 + 1}",
            sla_target=Decimal("99.5") if i % 10 == 0 else None,
        )
        for i in range(count)
    ]


def make_incidents(systems: list[SystemInfo], count: int, rng: random.Random) -> list[IncidentFact]:
    start, end = PERIOD.bounds()
    span = (end - start).total_seconds()
    facts = []
    for i in range(count):
        begun = start + timedelta(seconds=rng.uniform(-86_400, span))
        length = timedelta(seconds=rng.expovariate(1 / 1800))
        resolved = None if i % 400 == 0 else begun + length
        acknowledged = begun + timedelta(seconds=rng.uniform(30, 900)) if i % 3 else None
        maintenance = (MaintenanceSpan(start=begun, end=begun + length / 2),) if i % 10 == 0 else ()
        facts.append(
            IncidentFact(
                incident_id=f"inc-{i:06d}",
                system_id=rng.choice(systems).id,
                title=f"{rng.choice(WORDS)}ไม่ตอบสนอง HTTP 503",
                severity=rng.choice(SEVERITIES),
                kind=rng.choice(KINDS),
                started_at=begun,
                acknowledged_at=acknowledged,
                resolved_at=resolved,
                status="open" if resolved is None else "resolved",
                muted="dependency" if i % 20 == 0 else None,
                parent_incident_id=f"inc-{i - 1:06d}" if i % 20 == 0 and i else None,
                alerted=i % 20 != 0,
                maintenance=maintenance,
            )
        )
    return facts


async def store_and_read(facts: list[IncidentFact], url: str) -> tuple[float, int]:
    """Write `facts` to `report_facts`, then time reading October's (and September's) back."""
    client = connect(url)
    try:
        db = client["bench_report"]
        docs = [fact_document(f, NOW) for f in facts]
        for chunk in range(0, len(docs), WRITE_CHUNK):
            await db[FACTS].insert_many(docs[chunk : chunk + WRITE_CHUNK])
        began = time.perf_counter()
        found = await FactStore(db).facts(PERIOD.previous().bounds()[0], PERIOD.bounds()[1])
        return time.perf_counter() - began, len(found.facts)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--store", action="store_true", help="also time reading the facts from FerretDB")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    systems = make_systems(args.systems, rng)
    facts = make_incidents(systems, args.incidents, rng)
    if args.store:
        with tempfile.TemporaryDirectory(prefix="fao-report-bench-db-") as folder:
            server = start_ferretdb(Path(folder))
            try:
                seconds, count = asyncio.run(store_and_read(facts, server.url))
            finally:
                server.stop()
        print(f"reading {count:,} facts back from FerretDB: {seconds:.2f} s")
    out = args.out or Path(tempfile.mkdtemp(prefix="fao-report-bench-"))
    out.mkdir(parents=True, exist_ok=True)

    wall, cpu = time.perf_counter(), time.process_time()
    report = summarize_with_previous(PERIOD, systems, facts, NOW)
    figures = (time.perf_counter() - wall, time.process_time() - cpu)
    context = RenderContext(report, Formatter("th"))
    wall, cpu = time.perf_counter(), time.process_time()
    charts = context.charts
    chart_time = (time.perf_counter() - wall, time.process_time() - cpu)
    print(f"{args.systems:,} systems, {args.incidents:,} incidents ({len(report.incidents):,} in October)")
    print(f"{'step':>8}  {'wall s':>7}  {'CPU s':>7}  {'MB':>6}")
    print(f"{'figures':>8}  {figures[0]:7.2f}  {figures[1]:7.2f}  (with the previous month's change)")
    print(
        f"{'charts':>8}  {chart_time[0]:7.2f}  {chart_time[1]:7.2f}  ({len(charts)} PNG, shared by HTML and PDF)"
    )
    timings: dict[str, tuple[float, float]] = {}
    for name, renderer in RENDERERS.items():
        wall, cpu = time.perf_counter(), time.process_time()
        data = renderer.render(context)
        timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        path = out / f"fao-report-{PERIOD.key}{renderer.suffix}"
        path.write_bytes(data)
        print(f"{name:>8}  {timings[name][0]:7.2f}  {timings[name][1]:7.2f}  {len(data) / 1e6:6.2f}  {path}")
    steps = (figures, chart_time, timings["html"], timings["pdf"], timings["xlsx"])
    print(
        f"figures + charts + HTML + PDF + XLSX: {sum(w for w, _ in steps):.2f} s wall, "
        f"{sum(c for _, c in steps):.2f} s CPU (budget 15 s)"
    )


if __name__ == "__main__":
    main()
