"""NATS users and their permissions (least privilege), and the server configuration that holds them.

One user per role. ``admin`` may do everything (the CLI, tests, stream and bucket management); each
service user may publish and subscribe only what its service needs. The lists were worked out
against a real nats-server (``tests/integration/test_nats_auth.py`` checks both what each user can
do and what it cannot):

- every service user subscribes only to its own inboxes, ``_INBOX.<user>.>`` (replies to its
  JetStream requests, acks of its publishes, pull and KV watch deliveries; services connect with
  that ``inbox_prefix``), and may read the configuration of the Fao streams and config
  buckets (``$JS.API.STREAM.INFO.<stream>``, used to verify the bus at start-up); it never
  creates, changes or deletes a Fao stream or config bucket (``FAO_NATS_MANAGE_STREAMS=false``);
- ``prober``: publishes ``fao.results.>``, reads/watches the ``fao-monitors`` bucket, writes its
  heartbeat in ``fao-probers`` and watches the others' (every prober is the same user, so it may
  write any key of that bucket, nothing else), and puts failing browser checks' screenshots in the
  ``fao-screenshots`` object store (neither purges nor deletes it);
- ``correlator``: consumes results and commands (its two durables), publishes
  ``fao.incidents.v1.>`` and ``fao.command-outcomes.v1.>``, reads the ``fao-monitors`` and
  ``fao-maintenance`` buckets, holds its lease in ``fao-leases`` (which it may create; it
  writes only its own key ``lease.correlator``), and owns ``fao-monitor-state`` (the monitor
  states: it may create the bucket and write every key);
- ``notifier``: consumes incident events (its durable), holds its lease, publishes
  ``fao.commands.v1.open_manual`` only (the one platform incident when LINE's monthly limit is
  reached);
- ``reporter``: consumes incident events (its durable);
- ``gateway``: publishes commands (``fao.commands.v1.>``) and listens (a core subscription) for
  the correlator's refusals (``fao.command-outcomes.v1.rejected``), to tell the person in LINE;
  it reads the monitor states (``fao-monitor-state``) for the dashboard and the status page, and
  the screenshots (``fao-screenshots``) an incident names, for the dashboard's incident page;
- each consumer dead-letters on its own ``fao.deadletter.<service>`` only.

``render_config`` writes the ``authorization`` block for nats-server: with the passwords themselves
(``fao dev up``, tests) or with ``$VARIABLE`` references that nats-server resolves from its
environment (``deploy/nats.conf`` for docker compose).
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fao.runtime import bus
from fao.runtime.lease import lease_key
from fao.schemas import subjects as s

ADMIN = "admin"
SERVICES = ("prober", "correlator", "notifier", "reporter", "gateway")
USERS = (ADMIN, *SERVICES)

API = "$JS.API"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def stream_info(stream: str) -> list[str]:
    return [f"{API}.STREAM.INFO.{stream}"]


def kv_read(bucket: str) -> list[str]:
    """Open, get and watch a KV bucket (an ordered push consumer delivered to an inbox)."""
    stream = _kv_stream(bucket)
    return [
        *stream_info(stream),
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.DELETE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.>",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"$JS.FC.{stream}.>",
    ]


def kv_own(bucket: str, key: str) -> list[str]:
    """Read a KV bucket and write its key ``key``, and create the bucket or change its limits (the
    lease bucket: each singleton writes its own lease only)."""
    stream = _kv_stream(bucket)
    return [
        *kv_read(bucket),
        f"$KV.{bucket}.{key}",
        f"{API}.STREAM.CREATE.{stream}",
        f"{API}.STREAM.UPDATE.{stream}",
    ]


def _obj_stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def obj_write(bucket: str) -> list[str]:
    """Put objects in an object store (its chunk and meta subjects; the meta look-up before a
    put); neither create, purge nor delete it."""
    stream = _obj_stream(bucket)
    return [*stream_info(stream), f"{API}.STREAM.MSG.GET.{stream}", f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"]


def obj_read(bucket: str) -> list[str]:
    """Get objects from an object store: the meta look-up, then an ordered consumer over the
    object's chunks (nats-py finds its stream by subject: ``STREAM.NAMES``)."""
    stream = _obj_stream(bucket)
    return [
        *stream_info(stream),
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.STREAM.NAMES",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.DELETE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def consume(stream: str, durable: str) -> list[str]:
    """Create or bind the durable pull consumer ``durable`` on ``stream``, fetch and acknowledge."""
    return [
        *stream_info(stream),
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{API}.CONSUMER.INFO.{stream}.{durable}",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def retire(stream: str, durable: str) -> list[str]:
    """Read where the durable ``durable`` (of an earlier release) stopped, and delete it."""
    return [f"{API}.CONSUMER.INFO.{stream}.{durable}", f"{API}.CONSUMER.DELETE.{stream}.{durable}"]


def _verify() -> list[str]:
    """Read-only checks at start-up that the bus is in place (``fao.runtime.bus.verify_bus``)."""
    names = [spec.name for spec in bus.STREAMS] + [_kv_stream(b) for b in bus.BUCKETS]
    return [subject for name in names for subject in stream_info(name)]


def inbox_prefix(user: str) -> str:
    """The inbox prefix of ``user``'s connections: replies (JetStream acks and API answers, pull
    and KV watch deliveries) come to ``_INBOX.<user>.…``, and a user may subscribe only to its own,
    so no service can read the replies meant for another."""
    return f"_INBOX.{user}"


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _service(user: str, publish: Iterable[str], subscribe: Iterable[str] = ()) -> Permissions:
    return Permissions(_dedupe([*_verify(), *publish]), (f"{inbox_prefix(user)}.>", *subscribe))


PERMISSIONS: dict[str, Permissions] = {
    ADMIN: Permissions((">",), (">",)),
    "prober": _service(
        "prober",
        [
            s.RESULTS_SUBJECTS,
            *kv_read(s.MONITORS_BUCKET),
            *kv_read(s.PROBERS_BUCKET),
            f"$KV.{s.PROBERS_BUCKET}.>",
            *obj_write(s.SCREENSHOTS_BUCKET),
        ],
    ),
    "correlator": _service(
        "correlator",
        [
            # its durables are named per shard (``correlator-results-<mask>``): any durable of the
            # two streams it alone consumes, and it retires those no shard uses any more
            *consume(s.RESULTS_STREAM, "*"),
            *consume(s.COMMANDS_STREAM, "*"),
            *retire(s.RESULTS_STREAM, "*"),
            *retire(s.COMMANDS_STREAM, "*"),
            *(
                f"{API}.CONSUMER.{op}.{stream}"
                for op in ("LIST", "NAMES")
                for stream in (s.RESULTS_STREAM, s.COMMANDS_STREAM)
            ),
            s.INCIDENTS_SUBJECTS,
            s.COMMAND_OUTCOMES_SUBJECTS,
            # the platform role sends single results and commands on to their partition's owner
            s.RESULT_BATCH_SUBJECTS,
            s.ROUTED_COMMAND_SUBJECTS,
            *kv_read(s.MONITORS_BUCKET),
            *kv_read(s.MAINTENANCE_BUCKET),
            *kv_own(s.LEASES_BUCKET, lease_key("correlator.>")),
            f"$KV.{s.LEASES_BUCKET}.{s.correlator_member_key('*')}",
            *kv_own(s.STATE_BUCKET, ">"),
            s.dead_letter_subject("correlator"),
        ],
    ),
    "notifier": _service(
        "notifier",
        [
            *consume(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER),
            *kv_own(s.LEASES_BUCKET, lease_key("notifier")),
            s.dead_letter_subject("notifier"),
            # LINE's monthly limit reached → one platform incident (fao.notifier.channels.monthly_limit)
            s.command_subject("open_manual"),
        ],
    ),
    "reporter": _service(
        "reporter", [*consume(s.INCIDENTS_STREAM, s.REPORTER_CONSUMER), s.dead_letter_subject("reporter")]
    ),
    # The gateway also writes hand-made maintenance windows (API, dashboard), reads results as
    # they pass (core subscription: the dashboard's recent results and latency sparklines), and
    # publishes push monitors' heartbeats as results (fao.results.<monitor>: single results only),
    # following the monitors bucket to know the push monitors.
    "gateway": _service(
        "gateway",
        [
            s.COMMANDS_SUBJECTS,
            *kv_read(s.MAINTENANCE_BUCKET),
            f"$KV.{s.MAINTENANCE_BUCKET}.>",
            "fao.results.*",
            *kv_read(s.MONITORS_BUCKET),
            *kv_read(s.STATE_BUCKET),
            *obj_read(s.SCREENSHOTS_BUCKET),
        ],
        subscribe=[s.command_rejected_subject(), s.RESULTS_SUBJECTS],
    ),
}


def password_variable(user: str) -> str:
    """The environment variable that holds ``user``'s password in docker compose."""
    return f"FAO_NATS_{user.upper()}_PASSWORD"


def render_config(passwords: Mapping[str, str] | None = None) -> str:
    """The ``authorization`` block for nats-server: every user in ``USERS`` with its permissions.
    With ``passwords`` (user → password) they are written in; without, each password is the
    variable ``$FAO_NATS_<USER>_PASSWORD`` that nats-server reads from its environment."""
    lines = ["authorization {", "  users = ["]
    for user in USERS:
        perms = PERMISSIONS[user]
        password = json.dumps(passwords[user]) if passwords is not None else f"${password_variable(user)}"
        lines += [
            f"    {{user: {json.dumps(user)}, password: {password}, permissions: {{",
            f"      publish: {{allow: {json.dumps(list(perms.publish))}}}",
            f"      subscribe: {{allow: {json.dumps(list(perms.subscribe))}}}",
            "    }}",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)


def new_passwords() -> dict[str, str]:
    """A random password for each user, starting with a letter: nats-server reads a
    ``$FAO_NATS_<USER>_PASSWORD`` of ``deploy/nats.conf`` in its own syntax, and one starting with
    "-" (1 in 64 of ``token_urlsafe``'s) is a bad number there: the server exits 1."""
    return {user: secrets.choice(string.ascii_letters) + secrets.token_urlsafe(24) for user in USERS}


def load_or_create_passwords(path: Path) -> dict[str, str]:
    """The passwords kept in ``path`` (JSON, mode 0600), generated once at random when missing."""
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and all(isinstance(stored.get(u), str) for u in USERS):
            path.chmod(0o600)
            return {user: str(stored[user]) for user in USERS}
    passwords = new_passwords()
    write_private(path, json.dumps(passwords, indent=2) + "\n")
    return passwords


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` (``nats://host:port``) with ``user:password@`` in it, as nats-py accepts."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "nats", url
    rest = rest.rpartition("@")[2]
    return f"{scheme}://{user}:{password}@{rest}"


def url_user(url: str) -> str | None:
    """The user named in ``url``'s ``user:password@``, if any."""
    rest = url.partition("://")[2] or url
    if "@" not in rest:
        return None
    return rest.rpartition("@")[0].partition(":")[0] or None


def redact(url: str) -> str:
    """``url`` without any ``user:password@`` (for logs and output)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
