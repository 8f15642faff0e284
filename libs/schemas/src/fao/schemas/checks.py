"""Per-type check settings: a discriminated union on ``type``.

Adding a check type means one model here, one entry in ``CheckSpec`` and a checker plug-in in the
prober's registry (``push`` is the exception: the gateway records its heartbeats, no prober runs it).

Secrets are never written in config: a field ending in ``_env`` names the environment variable that
holds the secret on the machine running the check (like ``WebhookTarget.secret_env``).

Every model has ``target_host``: the host the check talks to, for the prober's per-host politeness.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, HttpUrl, field_validator, model_validator

from fao.schemas.base import FaoModel, Seconds
from fao.schemas.people import SecretRef

Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:-]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Variable = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]

DEFAULT_EXPECTED_STATUS: tuple[int, ...] = tuple(range(200, 400))
"""Every 2xx and 3xx status: the default ``expected_status``. One shared tuple: a monitor with the
default, given or left out, holds this object rather than its own 200 integers (≈6 KiB each, the
bulk of a prober's memory per monitor). Config and JSON carry it as the same list as before."""


def _share_default_status(codes: tuple[int, ...]) -> tuple[int, ...]:
    return DEFAULT_EXPECTED_STATUS if codes == DEFAULT_EXPECTED_STATUS else codes


ExpectedStatus = Annotated[
    tuple[Annotated[int, Field(ge=100, le=599)], ...],
    Field(min_length=1),
    AfterValidator(_share_default_status),
]
"""The statuses that count as up (a list in config and JSON; an immutable tuple in Python)."""


def _valid_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class BasicAuth(FaoModel):
    """HTTP basic authentication; the password comes from the environment variable ``password_env``."""

    username: Annotated[str, Field(min_length=1, max_length=200)]
    password_env: SecretRef


class LatencyRule(FaoModel):
    """Slow, not down: ``degraded`` when slower than ``max_ms`` in ``slow`` of the last ``of`` checks."""

    max_ms: Annotated[float, Field(gt=0, le=120_000)]
    slow: Annotated[int, Field(ge=1, le=20)] = 3
    of: Annotated[int, Field(ge=1, le=20)] = 5

    @model_validator(mode="after")
    def _slow_within_window(self) -> LatencyRule:
        if self.slow > self.of:
            raise ValueError(f"slow ({self.slow}) cannot exceed of ({self.of})")
        return self


class HttpCheck(FaoModel):
    """HTTP(S) request; up when the status is expected and the keyword rule holds."""

    type: Literal["http"] = "http"
    url: HttpUrl
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    expected_status: ExpectedStatus = Field(default_factory=lambda: DEFAULT_EXPECTED_STATUS)
    keyword: str | None = None
    keyword_absent: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True
    json_path: str | None = None
    """A JSON path into the response body (``$.status``, ``$.items[0].name``) that must exist."""
    json_expected: str | None = None
    """What the value at ``json_path`` must be, compared as text (``true``, ``ok``, ``3``)."""
    max_latency: LatencyRule | None = None
    client_cert: Annotated[str, Field(min_length=1)] | None = None
    """A PEM file with the client certificate (and its key unless ``client_key`` is given)."""
    client_key: Annotated[str, Field(min_length=1)] | None = None
    basic_auth: BasicAuth | None = None
    bearer_token_env: SecretRef | None = None
    """The environment variable holding a bearer token sent as ``Authorization: Bearer …``."""

    @model_validator(mode="after")
    def _keyword_rule(self) -> HttpCheck:
        if self.keyword_absent and self.keyword is None:
            raise ValueError("keyword_absent needs a keyword")
        if self.json_expected is not None and self.json_path is None:
            raise ValueError("json_expected needs a json_path")
        if self.json_path is not None:
            from fao.schemas.jsonpath import parse_json_path

            parse_json_path(self.json_path)
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs a client_cert")
        if self.basic_auth is not None and self.bearer_token_env is not None:
            raise ValueError("give basic_auth or bearer_token_env, not both")
        if any(name.lower() == "authorization" for name in self.headers):
            raise ValueError("no Authorization header in config: use basic_auth or bearer_token_env")
        return self

    @property
    def target_host(self) -> str:
        return (self.url.host or "").lower()


class TcpCheck(FaoModel):
    """TCP connect; up when the connection is accepted within the timeout."""

    type: Literal["tcp"] = "tcp"
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]

    @property
    def target_host(self) -> str:
        return self.host.lower()


DnsRecordType = Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA"]


class DnsCheck(FaoModel):
    """A DNS query; up when the resolver answers and the answer holds what is expected.

    ``expected``: every listed value is among the answers (as dnspython prints them, e.g. ``10
    mail.example.go.th.`` for MX); ``pattern``: a regular expression some answer matches. Neither:
    any non-empty answer is up."""

    type: Literal["dns"] = "dns"
    name: Annotated[str, Field(min_length=1, max_length=253)]
    record_type: DnsRecordType = "A"
    resolver: str | None = None
    """The resolver's IP address; the machine's own resolvers (/etc/resolv.conf) when not set."""
    resolver_port: Port = 53
    protocol: Literal["udp", "tcp"] = "udp"
    expected: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    pattern: str | None = None

    _regex = field_validator("pattern")(_valid_regex)

    @field_validator("resolver")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"resolver must be an IP address, not {value!r}") from None
        return value

    @property
    def target_host(self) -> str:
        return self.resolver or "resolv.conf"


class TlsCheck(FaoModel):
    """A TLS handshake on any TCP port: the chain and host name must verify (``verify``), and the
    certificate must not expire within ``critical_days`` (down) — within ``warn_days`` it is up
    with a warning in the detail."""

    type: Literal["tls"] = "tls"
    host: Host
    port: Port = 443
    server_name: Host | None = None
    """The name to verify and send in SNI; ``host`` when not set."""
    warn_days: Annotated[float, Field(ge=0, le=3650)] = 21
    critical_days: Annotated[float, Field(ge=0, le=3650)] = 7
    verify: bool = True
    ca_file: Annotated[str, Field(min_length=1)] | None = None
    """A PEM file of the CAs to trust (a ministry's own CA); the system's CAs when not set."""

    @model_validator(mode="after")
    def _thresholds(self) -> TlsCheck:
        if self.critical_days > self.warn_days:
            raise ValueError(
                f"critical_days ({self.critical_days:g}) cannot exceed warn_days ({self.warn_days:g})"
            )
        return self

    @property
    def target_host(self) -> str:
        return self.host.lower()


class IcmpCheck(FaoModel):
    """ICMP echo (ping) with unprivileged sockets; up when at least ``min_replies`` of ``count``
    echoes are answered. The host must allow it: sysctl ``net.ipv4.ping_group_range``."""

    type: Literal["icmp"] = "icmp"
    host: Host
    count: Annotated[int, Field(ge=1, le=10)] = 3
    min_replies: Annotated[int, Field(ge=1, le=10)] = 1
    interval: Annotated[Seconds, Field(ge=0.01, le=5)] = 0.2
    """Between two echoes."""

    @model_validator(mode="after")
    def _replies_within_count(self) -> IcmpCheck:
        if self.min_replies > self.count:
            raise ValueError(f"min_replies ({self.min_replies}) cannot exceed count ({self.count})")
        return self

    @property
    def target_host(self) -> str:
        return self.host.lower()


class _DatabaseCheck(FaoModel):
    """Connect and authenticate; then, optionally, run ``query`` and compare the first value of its
    first row, as text, with ``expected``."""

    host: Host
    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    password_env: SecretRef | None = None
    """The environment variable holding the password (never the password itself)."""
    database: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    query: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    expected: str | None = None

    @model_validator(mode="after")
    def _expected_needs_query(self) -> _DatabaseCheck:
        if self.expected is not None and self.query is None:
            raise ValueError("expected needs a query")
        return self

    @property
    def target_host(self) -> str:
        return self.host.lower()


class PostgresCheck(_DatabaseCheck):
    type: Literal["postgres"] = "postgres"
    port: Port = 5432
    tls: Literal["disable", "prefer", "require", "verify-full"] = "prefer"


class MysqlCheck(_DatabaseCheck):
    """MySQL or MariaDB."""

    type: Literal["mysql"] = "mysql"
    port: Port = 3306


class RedisCheck(FaoModel):
    """Connect, authenticate (``AUTH``), then run ``command`` (default ``PING``) and compare its
    reply, as text, with ``expected`` (default: ``PONG`` for ``PING``, anything otherwise)."""

    type: Literal["redis"] = "redis"
    host: Host
    port: Port = 6379
    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    password_env: SecretRef | None = None
    db: Annotated[int, Field(ge=0, le=1000)] = 0
    tls: bool = False
    command: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["PING"], min_length=1)
    expected: str | None = None

    @property
    def target_host(self) -> str:
        return self.host.lower()


class MongoCheck(FaoModel):
    """Connect, authenticate, run a database ``command`` (default ``{ping: 1}``); with ``field`` (a
    dotted path into the reply) compare that value, as text, with ``expected``."""

    type: Literal["mongodb"] = "mongodb"
    host: Host
    port: Port = 27017
    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    password_env: SecretRef | None = None
    auth_source: Annotated[str, Field(min_length=1)] = "admin"
    database: Annotated[str, Field(min_length=1, max_length=64)] = "admin"
    tls: bool = False
    command: dict[str, Any] = Field(default_factory=lambda: {"ping": 1}, min_length=1)
    field: Annotated[str, Field(min_length=1)] | None = None
    expected: str | None = None

    @model_validator(mode="after")
    def _expected_needs_field(self) -> MongoCheck:
        if self.expected is not None and self.field is None:
            raise ValueError("expected needs a field")
        return self

    @property
    def target_host(self) -> str:
        return self.host.lower()


class SshCheck(FaoModel):
    """The SSH server's banner (``banner``: a regular expression it must match) and, with
    ``fingerprint``, its host key (``SHA256:…`` as ``ssh-keygen -l`` prints it)."""

    type: Literal["ssh"] = "ssh"
    host: Host
    port: Port = 22
    banner: str | None = None
    fingerprint: Annotated[str, Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$")] | None = None

    _regex = field_validator("banner")(_valid_regex)

    @property
    def target_host(self) -> str:
        return self.host.lower()


class SnmpV3User(FaoModel):
    """SNMPv3 USM user; keys come from environment variables."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key_env: SecretRef | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] | None = None
    priv_key_env: SecretRef | None = None

    @model_validator(mode="after")
    def _keys(self) -> SnmpV3User:
        if (self.auth_protocol is None) != (self.auth_key_env is None):
            raise ValueError("auth_protocol and auth_key_env go together")
        if (self.priv_protocol is None) != (self.priv_key_env is None):
            raise ValueError("priv_protocol and priv_key_env go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol)")
        return self


class SnmpCheck(FaoModel):
    """SNMP GET of one OID (v2c with a community, or v3 with a user); up when the agent answers and
    the value equals ``expected`` (as text) or lies within ``min``..``max``."""

    type: Literal["snmp"] = "snmp"
    host: Host
    port: Port = 161
    version: Literal["2c", "3"] = "2c"
    community_env: SecretRef | None = None
    """v2c: the environment variable holding the community; ``public`` when not set."""
    v3_user: SnmpV3User | None = None
    oid: Annotated[str, Field(pattern=r"^\.?[0-9]+(\.[0-9]+)+$")]
    expected: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _version_settings(self) -> SnmpCheck:
        if self.version == "3" and self.v3_user is None:
            raise ValueError("version 3 needs v3_user")
        if self.version == "2c" and self.v3_user is not None:
            raise ValueError("v3_user is for version 3")
        if self.expected is not None and (self.min is not None or self.max is not None):
            raise ValueError("give expected or min/max, not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) cannot exceed max ({self.max:g})")
        return self

    @property
    def target_host(self) -> str:
        return self.host.lower()


class SmtpCheck(FaoModel):
    """The mail server's ``220`` banner (``banner``: a regular expression it must match), ``EHLO``,
    and with ``starttls`` a TLS upgrade (verified unless ``verify_tls`` is false); then ``QUIT``."""

    type: Literal["smtp"] = "smtp"
    host: Host
    port: Port = 25
    banner: str | None = None
    starttls: bool = False
    verify_tls: bool = True
    ehlo_name: Host = "fao.localhost"

    _regex = field_validator("banner")(_valid_regex)

    @property
    def target_host(self) -> str:
        return self.host.lower()


class PushCheck(FaoModel):
    """A heartbeat the monitored job sends (``POST /push/<token>`` on the gateway); no prober runs
    it. Down when the last heartbeat is older than the monitor's interval plus ``grace``. Only the
    token's SHA-256 is in config (``fao push-token`` prints a new token and its hash)."""

    type: Literal["push"] = "push"
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    grace: Annotated[Seconds, Field(ge=0, le=86400)] = 60.0

    @field_validator("token_sha256", mode="before")
    @classmethod
    def _a_digest(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is None:
            raise ValueError(
                "token_sha256 is the token's SHA-256 as `fao push-token` prints it (64 lower-case"
                " hex digits), never the token itself"
            )
        return value

    @property
    def target_host(self) -> str:
        return "push"


_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ENV_PLACEHOLDER = re.compile(r"^env:[A-Z][A-Z0-9_]{0,127}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class JourneyStep(FaoModel):
    """One request of a journey. ``url``, ``headers``, ``form`` and ``body`` may hold ``${name}``
    (a variable an earlier step extracted) and ``${env:NAME}`` (a secret from the environment:
    a login form's password is never written in config)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]
    headers: dict[str, str] = Field(default_factory=dict)
    form: dict[str, str] = Field(default_factory=dict)
    """Sent as ``application/x-www-form-urlencoded`` (a login form)."""
    body: str | None = None
    expected_status: ExpectedStatus = Field(default_factory=lambda: DEFAULT_EXPECTED_STATUS)
    keyword: str | None = None
    keyword_absent: bool = False
    extract: dict[Variable, str] = Field(default_factory=dict)
    """Variables for later steps: a regular expression over the body whose first group is the value."""

    @model_validator(mode="after")
    def _rules(self) -> JourneyStep:
        if self.keyword_absent and self.keyword is None:
            raise ValueError("keyword_absent needs a keyword")
        if self.form and self.body is not None:
            raise ValueError("give form or body, not both")
        for name, pattern in self.extract.items():
            _valid_regex(pattern)
            if re.compile(pattern).groups < 1:
                raise ValueError(f'extract {name}: the expression needs a group, e.g. value="([^"]+)"')
        for text in [self.url, self.body or "", *self.headers.values(), *self.form.values()]:
            for placeholder in _PLACEHOLDER.findall(text):
                if not (_VARIABLE.match(placeholder) or _ENV_PLACEHOLDER.match(placeholder)):
                    raise ValueError(
                        f"${{{placeholder}}}: use ${{variable}} or ${{env:NAME}} (NAME in capitals)"
                    )
        return self


class JourneyCheck(FaoModel):
    """A multi-step web journey: ordered HTTP requests sharing cookies (log in with a form, follow to
    a page, assert a keyword, extract a token for the next step), each step timed. Down at the first
    failing step, which is the result's detail; the monitor's timeout bounds the whole journey."""

    type: Literal["journey"] = "journey"
    steps: list[JourneyStep] = Field(min_length=1, max_length=20)
    follow_redirects: bool = True
    verify_tls: bool = True

    @model_validator(mode="after")
    def _variables_defined_before_use(self) -> JourneyCheck:
        known: set[str] = set()
        for number, step in enumerate(self.steps, start=1):
            texts = [step.url, step.body or "", *step.headers.values(), *step.form.values()]
            used = {p for text in texts for p in _PLACEHOLDER.findall(text) if not p.startswith("env:")}
            if missing := sorted(used - known):
                raise ValueError(
                    f"step {number} ({step.name}) uses ${{{missing[0]}}} before a step extracts it"
                )
            known.update(step.extract)
        return self

    @property
    def target_host(self) -> str:
        return (urlsplit(self.steps[0].url).hostname or "").lower()


class BrowserStep(FaoModel):
    """One action of a browser journey: exactly one of ``goto`` (a URL), ``click`` (a selector),
    ``fill`` (a selector, with ``value``), ``wait_for`` (a selector that must appear) or
    ``expect_text`` (text that must appear on the page). ``value`` and ``goto`` may hold
    ``${env:NAME}`` (a secret from the environment)."""

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    goto: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)] | None = None
    click: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    fill: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    value: str | None = None
    wait_for: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    expect_text: Annotated[str, Field(min_length=1, max_length=500)] | None = None

    @model_validator(mode="after")
    def _one_action(self) -> BrowserStep:
        actions = [
            a for a in ("goto", "click", "fill", "wait_for", "expect_text") if getattr(self, a) is not None
        ]
        if len(actions) != 1:
            raise ValueError("a step does exactly one of goto, click, fill, wait_for, expect_text")
        if (self.fill is None) != (self.value is None):
            raise ValueError("fill needs a value (and value belongs to fill)")
        for text in (self.goto or "", self.value or ""):
            for placeholder in _PLACEHOLDER.findall(text):
                if not _ENV_PLACEHOLDER.match(placeholder):
                    raise ValueError(
                        f"${{{placeholder}}}: a browser step takes only ${{env:NAME}} (NAME in capitals)"
                    )
        return self

    @property
    def label(self) -> str:
        """The step's name, or what it does."""
        if self.name:
            return self.name
        action = next(
            a for a in ("goto", "click", "fill", "wait_for", "expect_text") if getattr(self, a) is not None
        )
        target = getattr(self, action)
        return f"{action} {target}"[:100]


class BrowserCheck(FaoModel):
    """A journey in a real browser (Debian's chromium driven by Playwright): the page's scripts run,
    so a login that only works with JavaScript is checked too. Each step timed; down at the first
    failing step (its detail), with a screenshot of the page saved on the prober
    (``FAO_SCREENSHOT_DIR``). The first step must be a ``goto``."""

    type: Literal["browser"] = "browser"
    steps: list[BrowserStep] = Field(min_length=1, max_length=30)
    verify_tls: bool = True

    @model_validator(mode="after")
    def _starts_somewhere(self) -> BrowserCheck:
        if self.steps[0].goto is None:
            raise ValueError("the first step must be a goto")
        return self

    @property
    def target_host(self) -> str:
        return (urlsplit(self.steps[0].goto or "").hostname or "").lower()


def push_token_sha256(token: str) -> str:
    """What ``PushCheck.token_sha256`` holds for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_push_token() -> tuple[str, str]:
    """A new random push token (URL-safe, 32 characters) and its ``token_sha256``."""
    token = secrets.token_urlsafe(24)
    return token, push_token_sha256(token)


CheckSpec = Annotated[
    HttpCheck
    | TcpCheck
    | DnsCheck
    | TlsCheck
    | IcmpCheck
    | PostgresCheck
    | MysqlCheck
    | RedisCheck
    | MongoCheck
    | SshCheck
    | SnmpCheck
    | SmtpCheck
    | JourneyCheck
    | BrowserCheck
    | PushCheck,
    Field(discriminator="type"),
]

PROBER_SKIPS: frozenset[str] = frozenset({"push"})
"""Check types no prober runs (their results come from elsewhere: the gateway for ``push``)."""
