"""``fao`` command line (typer). Connection settings come from the same ``FAO_*`` env as services."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from nats.errors import Error as NatsError
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from fao.cli import web_commands
from fao.cli.apply import MASS_REMOVAL, ApplyRefusedError, decide, prepare, write
from fao.cli.dev import DEFAULT_GATEWAY_PORT, DevConfig, up
from fao.cli.incidents import list_incidents
from fao.runtime.brief import brief
from fao.runtime.launch import LaunchError, ferretdb_binary
from fao.runtime.settings import ServiceSettings
from fao.schemas import CommandAction
from fao.schemas.loader import ConfigError

# What a down or misconfigured NATS/MongoDB raises; reported as one line, never a traceback.
UNREACHABLE = (OSError, TimeoutError, PyMongoError, NatsError)

app = typer.Typer(help="Fao (เฝ้า): monitoring and incident alerting.", no_args_is_help=True)
dev = typer.Typer(help="Run Fao locally on loopback (embedded default).", no_args_is_help=True)
app.add_typer(dev, name="dev")
incidents = typer.Typer(help="Incidents: list, show, acknowledge, resolve, note, open by hand.")
app.add_typer(incidents, name="incidents")
maintenance = typer.Typer(
    help="Maintenance windows: planned downtime that sends no alerts.", no_args_is_help=True
)
app.add_typer(maintenance, name="maintenance")
# One ``fao line`` group: two Typer groups of the same name would hide one another's commands.
line = typer.Typer(help="LINE: the groups the bot is in, the month's message quota.", no_args_is_help=True)
app.add_typer(line, name="line")
app.add_typer(web_commands.tokens, name="tokens")
app.add_typer(web_commands.users, name="users")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command("apply")
def apply_cmd(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Folder of YAML files (teams, people, systems, monitors, maintenance)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the plan only.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove what is stored but no longer in the files.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help=f"With --prune: allow removing more than {MASS_REMOVAL:.0%} of a kind."),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing: list drift between MongoDB and the KV buckets (and the folder, if"
            " given, and MongoDB); exit 1 on drift.",
        ),
    ] = False,
    rescan: Annotated[
        bool,
        typer.Option(
            "--rescan",
            help="Plan against every stored monitor document, not apply's record of what it wrote"
            " (after MongoDB was edited by hand: --check says when).",
        ),
    ] = False,
) -> None:
    """Validate the inventory, show the plan, and (with --yes or a confirmation) write it to
    MongoDB and the KV buckets."""
    if check:
        if dry_run or yes or prune or force or rescan:
            raise _fail("--check writes nothing; leave out --dry-run, --yes, --prune, --force and --rescan")
        _apply_check(directory)
        return
    if directory is None:
        raise _fail("give the config folder: fao apply DIR (or fao apply --check [DIR])")
    if force and not prune:
        raise _fail("--force only matters with --prune")
    settings = ServiceSettings()
    try:
        full = asyncio.run(prepare(directory, settings.mongo_url, settings.mongo_db, rescan=rescan))
    except ApplyRefusedError as exc:
        raise _fail(str(exc)) from None
    except ConfigError as exc:
        for problem in exc.problems:
            typer.secho(str(problem), fg=typer.colors.RED, err=True)
        raise _fail(f"config rejected: {len(exc.problems)} problem(s); nothing was changed") from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    for note in full.inventory.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
    # One write for the whole plan: tens of thousands of lines are one echo, not one each.
    lines = [*full.summary(prune), *(change.describe(prune) for change in full.changes)]
    if lines:
        typer.echo("\n".join(lines))
    try:
        plan = decide(full, prune=prune, force=force)
    except ApplyRefusedError as exc:
        raise _fail(str(exc)) from None
    inv = full.inventory
    people = f"{len(inv.people)} people, " if inv.people else ""
    summary = f"{len(inv.teams)} teams, {people}{len(inv.systems)} systems, {len(inv.monitors)} monitors"
    if inv.maintenance:
        summary += f", {len(inv.maintenance)} maintenance window(s)"
    if kept := len(full.removals()) - len(plan.removals()):
        summary += f" ({kept} stored object(s) not in the files kept)"
    if dry_run:
        typer.echo(f"would apply: {summary}; {len(plan.changes)} change(s)")
        return
    # With no document to change, writing only brings the KV buckets in line (nothing to confirm).
    if plan.changes and not yes:
        if not sys.stdin.isatty():
            raise _fail(f"{len(plan.changes)} change(s) not written: not a terminal; add --yes to apply")
        if not typer.confirm(f"apply {len(plan.changes)} change(s)?", default=False):
            raise _fail("nothing was changed")
    try:
        asyncio.run(write(plan, settings.mongo_url, settings.mongo_db, settings.nats_url, directory))
    except ApplyRefusedError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(
            f"apply failed ({type(exc).__name__}: {exc}); what was written was undone"
            " (`fao apply --check` shows any difference left)"
        ) from None
    typer.echo(f"applied: {summary}; {len(plan.changes)} change(s)")


def _apply_check(directory: Path | None) -> None:
    """``fao apply --check``: print each difference; exit 0 when all agree, 1 on drift."""
    from fao.cli.drift import UnreachableError, check_drift

    settings = ServiceSettings()
    try:
        report = asyncio.run(check_drift(settings.mongo_url, settings.mongo_db, settings.nats_url, directory))
    except ConfigError as exc:
        for problem in exc.problems:
            typer.secho(str(problem), fg=typer.colors.RED, err=True)
        raise _fail(f"config rejected: {len(exc.problems)} problem(s); nothing was compared") from None
    except UnreachableError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach NATS or MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    places = "the config, MongoDB and KV" if directory is not None else "MongoDB and KV"
    if report.clean:
        typer.secho(f"no drift: {places} agree", fg=typer.colors.GREEN)
        return
    for line in report.lines():
        typer.echo(line)
    target = str(directory) if directory is not None else "<dir>"
    command = f"fao apply --rescan {target}" if report.rescan else f"fao apply {target}"
    raise _fail(
        f"drift: {len(report.differences)} difference(s) between {places};"
        f" run `{command}` to repair (KV and MongoDB are rewritten from the config)"
    )


@app.command("export")
def export_cmd(
    directory: Annotated[Path, typer.Argument(help="An empty (or new) folder for the YAML files.")],
) -> None:
    """Write the applied inventory back as YAML files (`fao apply` of them changes nothing)."""
    from fao.cli.export import ExportError, export

    settings = ServiceSettings()
    try:
        result = export(settings.mongo_url, settings.mongo_db, directory)
    except ExportError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    for note in result.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
    if not result.files:
        raise _fail("nothing to export: no inventory was applied to this database")
    for name, count in result.files.items():
        typer.echo(f"{directory / name}: {count}")


@app.command("audit")
def audit_cmd(
    since: Annotated[
        str | None,
        typer.Option("--since", help="7d, 12h, or a date/time (Bangkok): only entries since then."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="At most this many (newest).")
    ] = 100,
) -> None:
    """The audit log: who changed what, when and from where, with fields before → after."""
    from fao.cli.audit_log import SinceError, audit_lines, parse_since

    settings = ServiceSettings()
    try:
        start = parse_since(since, datetime.now(UTC)) if since else None
        lines = asyncio.run(audit_lines(settings.mongo_url, settings.mongo_db, start, limit))
    except SinceError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    if not lines:
        typer.echo("no audit entries" + (f" since {since}" if since else ""))
    for line in lines:
        typer.echo(line)


@app.command("doctor")
def doctor_cmd(
    retention_days: Annotated[
        int,
        typer.Option(
            "--retention-days",
            envvar="FAO_PEOPLE_RETENTION_DAYS",
            min=1,
            help="Days a person who left the config is kept before `fao people forget` is due.",
        ),
    ] = 365,
) -> None:
    """What needs attention (silent zones, monitors that never worked, unreachable teams...), with fixes."""
    from datetime import timedelta

    from fao.cli.doctor import run

    settings = ServiceSettings()
    try:
        retention = timedelta(days=retention_days)
        findings = asyncio.run(
            run(settings.mongo_url, settings.mongo_db, settings.nats_url, datetime.now(UTC), retention)
        )
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB or NATS ({type(exc).__name__}): {brief(exc)}") from None
    for finding in findings:
        typer.echo(str(finding))
    problems = sum(1 for f in findings if f.level == "problem")
    if not findings:
        typer.secho("all well: nothing needs attention", fg=typer.colors.GREEN)
        return
    typer.echo(f"{problems} problem(s), {len(findings) - problems} warning(s)")
    if problems:
        raise typer.Exit(code=1)


people_app = typer.Typer(help="People in the inventory: PDPA requests.", no_args_is_help=True)
app.add_typer(people_app, name="people")


@people_app.command("export")
def people_export(person_id: Annotated[str, typer.Argument(help="The person's id in the config.")]) -> None:
    """Everything Fao holds about a person (their config and every place they are named), as JSON."""
    from fao.cli.people import PeopleError, export_person

    settings = ServiceSettings()
    try:
        typer.echo(asyncio.run(export_person(settings.mongo_url, settings.mongo_db, person_id)))
    except PeopleError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None


@people_app.command("forget")
def people_forget(
    person_id: Annotated[str, typer.Argument(help="The person's id in the config.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")] = False,
) -> None:
    """Erase a person (PDPA): their name and contacts become a pseudonym everywhere Fao stored them."""
    import getpass

    from fao.cli.people import PeopleError, forget_person

    if not yes and not (sys.stdin.isatty() and typer.confirm(f"erase {person_id} for good?", default=False)):
        raise _fail("nothing was changed (add --yes to erase)")
    settings = ServiceSettings()
    try:
        done = asyncio.run(
            forget_person(
                settings.mongo_url, settings.mongo_db, settings.nats_url, person_id, getpass.getuser()
            )
        )
    except PeopleError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    typer.echo(f"{person_id} erased: now {done.pseudonym} in {done.documents} stored document(s)")
    if done.bus_events:
        typer.echo(
            f"{done.bus_events} incident event(s) on the bus still name them; they age out with the"
            " stream's retention (400 days)"
        )
    typer.echo("remove them from the config files too: fao apply refuses to bring them back")


@app.command("report")
def report_cmd(
    period: Annotated[
        str | None,
        typer.Argument(help="Month as YYYY-MM (CE), e.g. 2026-10, or a fiscal year to date, e.g. fy2570."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("reports"),
    formats: Annotated[
        list[str] | None, typer.Option("--format", help="html, pdf, xlsx or json (repeat; default all).")
    ] = None,
    language: Annotated[str, typer.Option("--language", help="th or en.")] = "th",
    thai_digits: Annotated[bool, typer.Option("--thai-digits", help="Write numbers in Thai digits.")] = False,
    include_maintenance: Annotated[
        bool, typer.Option("--include-maintenance", help="Count downtime inside maintenance windows.")
    ] = False,
    worst: Annotated[
        int, typer.Option("--worst", min=0, max=100, help="How many least available systems to list (0-100).")
    ] = 10,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="First rebuild the read model by replaying the incident stream.")
    ] = False,
) -> None:
    """Write the availability report (HTML, PDF, XLSX, JSON) of a month or fiscal year to date."""
    from fao.cli.report_progress import run_report  # imported late: keeps `fao apply` start-up fast
    from fao.reporter.produce import ReportOutputError

    if period is None and not rebuild:
        raise _fail("give a period (YYYY-MM or fyYYYY) or --rebuild")
    try:
        lines = run_report(
            ServiceSettings(),
            period,
            out,
            formats=formats,
            language=language,
            thai_digits=thai_digits,
            include_maintenance=include_maintenance,
            worst=worst,
            rebuild=rebuild,
        )
    except (ValueError, ReportOutputError) as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB or NATS ({type(exc).__name__}): {brief(exc)}") from None
    for line in lines:
        typer.echo(line)


ShowAll = Annotated[bool, typer.Option("--all", help="Also resolved incidents.")]
Limit = Annotated[int, typer.Option(min=1, help="At most this many, newest first.")]
IncidentId = Annotated[str, typer.Argument(help="Incident id (see fao incidents).")]
Actor = Annotated[str | None, typer.Option("--as", help="Who acts (default: your login name).")]
Wait = Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for the correlator's answer.")]


@incidents.callback(invoke_without_command=True)
def incidents_main(ctx: typer.Context, show_all: ShowAll = False, limit: Limit = 50) -> None:
    """List open incidents (newest first), with Thai system names and times; or act on one."""
    if ctx.invoked_subcommand is None:
        _list_incidents(show_all, limit)


@incidents.command("list")
def incidents_list(show_all: ShowAll = False, limit: Limit = 50) -> None:
    """List open incidents (newest first), with Thai system names and times (same as the bare form)."""
    _list_incidents(show_all, limit)


def _list_incidents(show_all: bool, limit: int) -> None:
    settings = ServiceSettings()
    try:
        rows = asyncio.run(
            list_incidents(settings.mongo_url, settings.mongo_db, datetime.now(UTC), show_all, limit)
        )
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    if not rows:
        typer.echo("no incidents" if show_all else "no open incidents")
    for row in rows:
        typer.echo(row)


@incidents.command("show")
def incidents_show(incident_id: IncidentId) -> None:
    """One incident in detail, with its timeline (and that of systems suppressed under it) and its
    delivery log (channel, target, attempts, outcome, cost)."""
    from fao.cli.incidents import UnknownIncidentError, show_incident

    settings = ServiceSettings()
    try:
        lines = asyncio.run(
            show_incident(settings.mongo_url, settings.mongo_db, incident_id, datetime.now(UTC))
        )
    except UnknownIncidentError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    for line in lines:
        typer.echo(line)


@incidents.command("ack")
def incidents_ack(incident_id: IncidentId, actor: Actor = None, wait: Wait = 10.0) -> None:
    """Acknowledge an incident: someone is working on it."""
    _send("ack", actor, wait, incident_id=incident_id)


@incidents.command("resolve")
def incidents_resolve(
    incident_id: IncidentId,
    actor: Actor = None,
    text: Annotated[str, typer.Option("--text", help="What was done.")] = "",
    wait: Wait = 10.0,
) -> None:
    """Resolve an incident by hand (monitors still failing stay quiet until they recover)."""
    _send("resolve", actor, wait, incident_id=incident_id, text=text)


@incidents.command("note")
def incidents_note(
    incident_id: IncidentId,
    text: Annotated[str, typer.Option("--text", help="The note.")],
    actor: Actor = None,
    wait: Wait = 10.0,
) -> None:
    """Add a note to an incident's timeline."""
    _send("note", actor, wait, incident_id=incident_id, text=text)


@incidents.command("open")
def incidents_open(
    text: Annotated[str, typer.Option("--text", help="What is wrong, as reported.")],
    system: Annotated[str | None, typer.Option("--system", help="System id, if known.")] = None,
    actor: Actor = None,
    wait: Wait = 10.0,
) -> None:
    """Open an incident by hand (a problem the monitors do not see)."""
    _send("open_manual", actor, wait, system_id=system, text=text)


def _send(
    action: CommandAction,
    actor: str | None,
    wait: float,
    *,
    incident_id: str | None = None,
    system_id: str | None = None,
    text: str = "",
) -> None:
    """Publish one command and report the correlator's answer: 0 accepted, 1 rejected (or
    invalid), 2 no answer within ``wait`` seconds (the command stays queued)."""
    from fao.cli.incidents import Accepted, new_command, record_command, send_command

    try:
        command = new_command(action, actor, incident_id=incident_id, system_id=system_id, text=text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'command'}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid command: {problems}") from None
    settings = ServiceSettings()
    try:
        answer = asyncio.run(send_command(settings.nats_url, command, wait))
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach NATS ({type(exc).__name__}): {brief(exc)}") from None
    try:
        asyncio.run(record_command(settings.mongo_url, settings.mongo_db, command, answer))
    except UNREACHABLE as exc:
        typer.secho(
            f"command {command.command_id} sent, but not written to the audit log: cannot reach MongoDB"
            f" ({type(exc).__name__})",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if answer is None:
        typer.secho(
            f"command {command.command_id} queued; the correlator did not answer within {wait:g} s",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(code=2)
    if isinstance(answer, Accepted):
        typer.secho(answer.describe(), fg=typer.colors.GREEN)
        return
    raise _fail(f"rejected: {answer.rejection.reason}")


@app.command("check")
def check_cmd(
    monitor_id: Annotated[str | None, typer.Argument(help="Monitor id from the config folder.")] = None,
    config: Annotated[Path, typer.Option(help="Config folder holding the monitor.")] = Path(
        "examples/config"
    ),
    url: Annotated[
        str | None, typer.Option(help="Try an HTTP(S) check of this URL instead (no config needed).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="With --url: give up after this many seconds.")] = 10.0,
) -> None:
    """Run one monitor's check now from this machine (nothing is published) and show what it
    observed; exit 1 when down."""
    from fao.cli.check import (
        NotRunnableError,
        UnknownMonitorError,
        adhoc_monitor,
        describe,
        find_monitor,
        run_check,
    )

    if (monitor_id is None) == (url is None):
        raise _fail("give a monitor id or --url URL (one of them)")
    try:
        monitor = adhoc_monitor(url, timeout) if url is not None else find_monitor(config, monitor_id or "")
        outcome = asyncio.run(run_check(monitor))
    except ConfigError as exc:
        for problem in exc.problems:
            typer.secho(str(problem), fg=typer.colors.RED, err=True)
        raise _fail(f"config rejected: {len(exc.problems)} problem(s)") from None
    except (UnknownMonitorError, NotRunnableError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(describe(monitor, outcome))
    if not outcome.ok:
        raise typer.Exit(code=1)


@app.command("push-token")
def push_token_cmd() -> None:
    """A new token for a push monitor: give the token to the job (POST /push/<token> on the gateway),
    put only its hash in the monitor's config (check: {type: push, token_sha256: ...})."""
    from fao.schemas.checks import new_push_token

    token, digest = new_push_token()
    typer.echo(f"token:        {token}")
    typer.echo(f"token_sha256: {digest}")


@line.command("quota")
def line_quota() -> None:
    """The month's LINE quota: limit, used, remaining, forecast; each team group's member count
    (what a push to it costs); whether teams get digests only; exhausted_until if LINE said so."""
    from fao.cli.line_quota import LineAccess, quota_report
    from fao.notifier.settings import NotifierSettings

    settings = NotifierSettings()
    token = settings.line_channel_access_token
    access = LineAccess(
        token=token.get_secret_value() or None if token is not None else None,
        api_base=settings.line_api_base,
        timeout=settings.line_timeout,
    )
    try:
        lines = asyncio.run(quota_report(settings.mongo_url, settings.mongo_db, datetime.now(UTC), access))
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    for text in lines:
        typer.echo(text)


@dev.command("up")
def dev_up(
    config: Annotated[Path, typer.Option(help="Inventory to apply.")] = Path("examples/config"),
    data: Annotated[Path, typer.Option(help="Where NATS and FerretDB keep data.")] = Path("var/dev"),
    nats_port: Annotated[int, typer.Option(min=1, max=65535, help="NATS client port.")] = 4222,
    mongo_port: Annotated[
        int, typer.Option(min=1, max=65535, help="FerretDB (MongoDB protocol) port.")
    ] = 27017,
    http_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            help="First /healthz + /metrics port: correlator, notifier, reporter, one per prober zone,"
            " then the gateway.",
        ),
    ] = 9101,
    gateway_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the gateway's LINE webhook (loopback).")
    ] = DEFAULT_GATEWAY_PORT,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Start no demo target (for your own inventory).")
    ] = False,
    demo_port: Annotated[
        int,
        typer.Option(min=1, max=65535, help="Port of the demo target (examples/config checks 18080 only)."),
    ] = 18080,
    demo_period: Annotated[float, typer.Option(help="Seconds per demo up/down cycle.")] = 120.0,
    demo_outage: Annotated[float, typer.Option(help="Seconds the demo is down per cycle.")] = 40.0,
) -> None:
    """Start NATS, FerretDB, every service (one prober per zone) and a demo target; Ctrl-C stops all."""
    if not no_demo and not 0 < demo_outage < demo_period:
        raise _fail("--demo-outage must be between 0 and --demo-period")
    cfg = DevConfig(
        data_dir=data.resolve(), config_dir=config, nats_port=nats_port, mongo_port=mongo_port,
        first_http_port=http_port, demo=not no_demo, demo_port=demo_port, demo_period=demo_period,
        demo_outage=demo_outage, gateway_port=gateway_port,
    )  # fmt: skip
    try:
        asyncio.run(up(cfg))
    except (LaunchError, ConfigError, ApplyRefusedError) as exc:
        raise _fail(str(exc)) from None


@line.command("groups")
def line_groups(
    show_left: Annotated[bool, typer.Option("--all", help="Also the groups the bot has left.")] = False,
) -> None:
    """The LINE groups the bot is in (ids for the teams' line_groups, with names), and a warning for
    every team whose configured group the bot left or never joined."""
    from fao.cli.line import describe_groups, load_groups

    settings = ServiceSettings()
    try:
        report = asyncio.run(load_groups(settings.mongo_url, settings.mongo_db))
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    view = describe_groups(report, show_left=show_left)
    if not view.lines:
        typer.echo("the bot is in no LINE group yet (none recorded): add it to a group, then look again")
    for row in view.lines:
        typer.echo(row)
    for warning in view.warnings:
        typer.secho(warning, fg=typer.colors.YELLOW, err=True)


@dev.command("build-ferretdb")
def dev_build_ferretdb() -> None:
    """Build FerretDB v1.24.2 into the cache folder (once; later calls return at once)."""
    try:
        typer.echo(str(ferretdb_binary()))
    except LaunchError as exc:
        raise _fail(str(exc)) from None


@maintenance.command("add")
def maintenance_add(
    system: Annotated[list[str] | None, typer.Option("--system", help="System id (repeatable).")] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="Every system of this team (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Every monitor with this tag (repeatable).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why the systems are down on purpose.")] = None,
    start: Annotated[
        str | None, typer.Option(help="Start, default now: YYYY-MM-DD HH:MM (Bangkok) or ISO 8601.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="End, same format as --start.")] = None,
    duration: Annotated[str | None, typer.Option(help="Length instead of --end: 30m, 2h, 1d.")] = None,
    window_id: Annotated[
        str | None, typer.Option("--id", help="Window id; default mw-<yyyymmdd>-<4 hex>.")
    ] = None,
) -> None:
    """Add a one-off maintenance window (the correlator sees it at once)."""
    import getpass

    from fao.cli.maintenance import MaintenanceError, add_window, build_window, resolve_span
    from fao.runtime.thai import format_thai_datetime

    settings = ServiceSettings()
    now = datetime.now(UTC)
    actor = getpass.getuser()
    try:
        begin, finish = resolve_span(start, end, duration, now)
        window = build_window(
            window_id=window_id, reason=reason, systems=system or [], teams=team or [], tags=tag or [],
            start=begin, end=finish, created_by=actor,
        )  # fmt: skip
        connection = (settings.mongo_url, settings.mongo_db, settings.nats_url)
        added = add_window(*connection, window, generated_id=window_id is None, actor=actor, now=now)
        window = asyncio.run(added)
    except MaintenanceError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach NATS or MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    assert window.start is not None
    assert window.end is not None
    typer.echo(
        f"added {window.id}: {format_thai_datetime(window.start)} – {format_thai_datetime(window.end)}"
    )


@maintenance.command("list")
def maintenance_list(
    show_all: Annotated[bool, typer.Option("--all", help="Also windows that are over.")] = False,
) -> None:
    """List active and upcoming maintenance windows (Bangkok times)."""
    from fao.cli.maintenance import list_windows

    settings = ServiceSettings()
    try:
        rows = asyncio.run(list_windows(settings.mongo_url, settings.mongo_db, datetime.now(UTC), show_all))
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    if not rows:
        typer.echo("no maintenance windows" if show_all else "no active or upcoming maintenance windows")
    for row in rows:
        typer.echo(row)


@maintenance.command("end")
def maintenance_end(
    window_id: Annotated[str, typer.Argument(help="Window id (see fao maintenance list).")],
) -> None:
    """End a maintenance window now (an upcoming one-off window is cancelled)."""
    import getpass

    from fao.cli.maintenance import MaintenanceError, end_window

    settings = ServiceSettings()
    connection = (settings.mongo_url, settings.mongo_db, settings.nats_url)
    try:
        ended = asyncio.run(
            end_window(*connection, window_id, actor=getpass.getuser(), now=datetime.now(UTC))
        )
    except MaintenanceError as exc:
        raise _fail(str(exc)) from None
    except UNREACHABLE as exc:
        raise _fail(f"cannot reach NATS or MongoDB ({type(exc).__name__}): {brief(exc)}") from None
    typer.echo(ended.message)
