"""Broker settings: msgspec Structs from a TOML file and `VOUCH_*` variables.

Every problem is collected and reported at once, so an operator fixes a config in one pass.
Each field declares its description, range and start checks (`msgspec.Meta`); the loader,
the start-up checks and the configuration reference (docs/configuration.md) all read
them from `FIELDS`, so the documentation cannot drift from what is enforced.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple, get_args, get_origin, get_type_hints
from urllib.parse import urlparse

import msgspec
from msgspec import Meta

from broker.validation_messages import error_complaint
from policies.duration import parse_duration

ENV_PREFIX = "VOUCH_"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster"})
EXAMPLE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "examples" / "org.toml"

# Start checks beyond types and ranges: each rule is declared on its field (the reference
# lists it) and is the text of the problem reported when it fails.
HTTPS_ISSUER = "must be an https URL (plain http only for localhost)"
BARE_ISSUER = "must be a bare URL without query or fragment"
REDIS_SCHEME = f"scheme must be one of {', '.join(sorted(REDIS_SCHEMES))}"
ONE_SIGNER = "set one, not both"
_SIGNER_CHECKS = {"checks": (f"{ONE_SIGNER} (signing_keys, kms_key_id)",)}


class AwsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The AWS the broker calls: the `[aws]` table and `VOUCH_AWS_*` variables."""

    region: Annotated[
        str,
        Meta(
            description="Region of the AWS endpoints the broker calls: STS, and KMS with "
            "kms_key_id."
        ),
    ] = "us-east-1"
    endpoint_url: Annotated[
        str | None,
        Meta(
            description="A local STS (moto server) for development and tests; unset for real AWS."
        ),
    ] = None
    sts_timeout_s: Annotated[
        float,
        Meta(
            ge=0.05,
            le=30,
            description="Connect and read timeout of one STS call; with 3 attempts a refusal "
            "comes in ~8 s.",
        ),
    ] = 2.5
    sts_assertion_ttl_s: Annotated[
        int,
        Meta(
            ge=30,
            le=300,
            description="Lifetime of the assertion the broker presents to STS (at most 300 s).",
        ),
    ] = 300
    revocation_policy: Annotated[
        str,
        Meta(
            pattern=r"^[\w+=,.@-]{1,128}$",
            description="Name of the inline policy on the agents and people roles in which the "
            "broker writes "
            "its revocations as Deny statements, so AWS refuses revoked sessions within seconds. "
            "Needs AWS credentials of the broker's own (the standard boto3 chain) with the "
            "permissions `vouch-broker aws-setup` prints; without any, the cut is disabled.",
        ),
    ] = "vouch-revocations"
    cut_sessions: Annotated[
        bool,
        Meta(
            description="Write revocations to the agents and people roles so AWS denies live "
            "sessions "
            "(`revocation_policy`). Off: revocations stop new exchanges only.",
        ),
    ] = True
    invocation_log_group: Annotated[
        str,
        Meta(
            pattern=r"^[\w#/.-]{1,512}$",
            description="The CloudWatch Logs group Bedrock's model invocation logging writes "
            'to (stream aws/bedrock/modelinvocations): what `usage_source = "cloudwatch"` '
            "reads, and what `vouch-broker dev` creates in the local AWS emulator.",
        ),
    ] = "vouch-bedrock-invocations"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the broker reads at start; nested Structs are TOML tables."""

    issuer: Annotated[
        str,
        Meta(
            description="The OIDC issuer URL (`iss` of every token); https except for localhost "
            "development.",
            extra={"checks": (HTTPS_ISSUER, BARE_ISSUER)},
        ),
    ] = "http://localhost:8080"
    redis_url: Annotated[
        str,
        Meta(
            description="Where all broker state lives: redis://, rediss://, unix://, "
            "redis+sentinel://, redis+cluster://.",
            extra={"checks": (REDIS_SCHEME,)},
        ),
    ] = "redis://127.0.0.1:6379/0"
    revocation_replicas: Annotated[
        int,
        Meta(
            description="The fewest replicas that must hold a revocation (Redis WAIT) before "
            "the API acknowledges it; the broker also waits for every replica the topology "
            "lists. A Redis Cluster needs its replicas per primary here.",
        ),
    ] = 0
    revocation_wait_ms: Annotated[
        int,
        Meta(
            description="How long to wait for those replicas before answering 503 "
            "revocation-unconfirmed (the client retries).",
        ),
    ] = 500
    redis_allow_unsafe: Annotated[
        bool,
        Meta(
            description="Run even when the Redis topology check finds what can lose "
            "acknowledged revocations (a replicated node without the AOF, a cluster with "
            "fewer revocation_replicas than replicas per primary); off: `serve` refuses to "
            "start and /readyz answers 503.",
        ),
    ] = False
    redis_timeout_s: Annotated[
        float,
        Meta(
            ge=0.01,
            le=30,
            description="Upper bound on one Redis round trip; past it the request fails closed "
            "with 503.",
        ),
    ] = 0.5
    signing_keys: Annotated[
        str | None,
        Meta(
            description="Directory of PEM signing keys (see `vouch-broker keys`). Required "
            "unless kms_key_id.",
            extra=_SIGNER_CHECKS,
        ),
    ] = None
    kms_key_id: Annotated[
        str | None,
        Meta(
            description="AWS KMS key (ECC_NIST_P256) to sign with instead of local PEM files.",
            extra=_SIGNER_CHECKS,
        ),
    ] = None
    key_refresh_s: Annotated[
        float,
        Meta(
            ge=0.1,
            le=60,
            description="How often each worker re-reads the signing key directory and drops "
            "keys revoked with `vouch-broker keys revoke` (tokens they signed are refused at "
            "once regardless).",
        ),
    ] = 1.0
    policy_file: Annotated[
        str,
        Meta(
            description="The org policy (TOML): who may delegate which models, limits, admins, "
            "AWS role."
        ),
    ] = str(EXAMPLE_POLICY)
    catalog_file: Annotated[
        str | None,
        Meta(description="Optional TOML extending the built-in Bedrock model catalog."),
    ] = None
    prices_file: Annotated[
        str | None,
        Meta(
            description="Optional TOML of Bedrock prices (USD per 1,000,000 tokens, the format "
            "of policies/data/prices.toml) replacing the built-in ones model by model; the "
            "built-in prices are examples to check (docs/usage.md).",
        ),
    ] = None
    usage_source: Annotated[
        str | None,
        Meta(
            description="Where usage reports (`GET /v1/usage`, `vouch usage`, the default of "
            "`vouch-broker usage --from`) read Bedrock's model invocation logs: "
            "`cloudwatch` (the group in aws.invocation_log_group), `cloudwatch:GROUP`, "
            "`s3://BUCKET/PREFIX`, or a local file or directory. Unset: no usage reports.",
        ),
    ] = None
    spend_poll_interval_s: Annotated[
        float,
        Meta(
            ge=0.2,
            le=600,
            description="How often the spend follower reads new invocation log records to "
            "enforce delegation budgets (only when `usage_source` is CloudWatch Logs); with "
            "Bedrock's delivery lag, a budget can be overshot by what is spent in this time "
            "(docs/usage.md, Budgets).",
        ),
    ] = 30.0
    rp_id: Annotated[
        str,
        Meta(
            description="WebAuthn relying-party id: the broker's host name (or a registrable "
            "parent)."
        ),
    ] = "localhost"
    rp_name: Annotated[
        str, Meta(description="Relying-party name shown by authenticators that display one.")
    ] = "Vouch"
    allow_software_keys: Annotated[
        bool,
        Meta(
            description="Accept the vouch software authenticator (tests and demos only; it is "
            "not hardware)."
        ),
    ] = False
    aaguids: Annotated[
        list[str],
        Meta(
            description="Allow-list of authenticator models (AAGUIDs); empty allows any "
            "hardware key."
        ),
    ] = msgspec.field(default_factory=list)
    origins: Annotated[
        list[str],
        Meta(description="Origins accepted in FIDO2 client data; defaults to the issuer's origin."),
    ] = msgspec.field(default_factory=list)
    session_ttl_s: Annotated[
        int, Meta(ge=60, le=24 * 3600, description="Lifetime of a human session token.")
    ] = 8 * 3600
    challenge_ttl_s: Annotated[
        int,
        Meta(ge=1, le=120, description="Lifetime of a WebAuthn challenge (at most 120 s)."),
    ] = 120
    request_ttl_s: Annotated[
        int,
        Meta(
            ge=1,
            le=3600,
            description="How long an agent's delegation request waits for the person to "
            "approve it.",
        ),
    ] = 300
    request_max_pending_per_person: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description="Agent requests that may wait for one person's answer at once.",
        ),
    ] = 5
    request_max_pending_per_address: Annotated[
        int,
        Meta(
            ge=1,
            le=1000,
            description="Agent requests that may wait at once from one client address (an "
            "IPv6 /64 counts as one); keep it below the per-person bound so one host cannot "
            "fill a person's queue.",
        ),
    ] = 3
    invite_ttl_s: Annotated[int, Meta(description="Lifetime of a one-time invite code.")] = (
        24 * 3600
    )
    clock_leeway_s: Annotated[
        int,
        Meta(ge=0, le=300, description="Clock skew tolerated when checking token times."),
    ] = 30
    dpop_proof_max_age_s: Annotated[
        int,
        Meta(
            ge=5,
            le=600,
            description="How old a DPoP proof (of a key-bound agent token) may be; its `jti` "
            "is remembered in Redis this long, so no proof is accepted twice. A proof may be "
            "`clock_leeway_s` in the future.",
        ),
    ] = 60
    verified_token_cache_entries: Annotated[
        int,
        Meta(
            ge=0,
            le=1_000_000,
            description="Agent tokens whose signature each worker remembers as verified "
            "(least recently used first out; 0 turns the cache off). Revocation and DPoP "
            "proofs are still checked on every exchange.",
        ),
    ] = 10_000
    log_level: Annotated[str, Meta(description="Python logging level of the JSON logs.")] = "INFO"
    http_header_timeout_s: Annotated[
        float,
        Meta(
            ge=0.5,
            le=300,
            description="`vouch-broker serve`: seconds a client has to send a request's line "
            "and headers, from connecting (or from the first byte of a later request on a "
            "kept-alive connection); then 408 and the connection is closed.",
        ),
    ] = 10.0
    expose_metrics: Annotated[
        bool,
        Meta(
            description="Serve `GET /metrics` (Prometheus) on the broker port; off, it is 404. "
            "Turn on only where the proxy keeps the path from the internet."
        ),
    ] = False
    expose_schema: Annotated[
        bool,
        Meta(description="Serve the OpenAPI schema and its viewers under `/schema`; off, 404."),
    ] = False
    audit_max_len: Annotated[
        int, Meta(description="Approximate cap on the audit stream length.")
    ] = 100_000
    audit_exchange_interval_s: Annotated[
        float,
        Meta(
            ge=0,
            le=3600,
            description="Exchanges answered from the cache, and repeats of a refusal (same "
            "delegation, same problem), are counted and written to the audit trail as one "
            "event per this many seconds (per worker); credentials from a provider call and "
            "the first refusal of each kind are written at once. 0 writes every exchange.",
        ),
    ] = 60.0
    access_log: Annotated[
        bool,
        Meta(
            description="Log each request (logger `vouch.access`, at INFO): method, route, "
            "status, duration, request id and who asked; never a token or header value.",
        ),
    ] = True
    rate_login_per_min: Annotated[
        int,
        Meta(description="Login and enroll attempts per minute, per client address and per email."),
    ] = 30
    rate_requests_per_min: Annotated[
        int,
        Meta(
            description="Agent delegation requests per minute, per client address and per "
            "email asked."
        ),
    ] = 20
    rate_approvals_per_min: Annotated[
        int,
        Meta(
            description="User-code lookups (approve or deny) per minute, per client address "
            "and per person."
        ),
    ] = 10
    rate_polls_per_min: Annotated[
        int,
        Meta(
            description="Delegation-request polls per minute, per client address and per request."
        ),
    ] = 120
    rate_usage_per_min: Annotated[
        int,
        Meta(
            description="Usage reports (`GET /v1/usage`, `vouch usage`) per minute, per client "
            "address and per person: each reads its whole range of invocation logs."
        ),
    ] = 10
    aws: AwsSettings = msgspec.field(default_factory=AwsSettings)


@dataclass(frozen=True)
class SettingField:
    """One setting as the TOML file, the environment, the start checks and the docs name it."""

    path: tuple[str, ...]
    """Field names from `Settings` down: ("aws", "region")."""
    type: Any
    """The value's type without its metadata: what TOML and environment text convert to."""
    default: Any
    description: str
    bounds: tuple[float, float] | None
    """Inclusive range checked at start (`Meta(ge=..., le=...)`)."""
    checks: tuple[str, ...]
    """Further rules checked at start (`Meta(extra={"checks": ...})`)."""

    @property
    def key(self) -> str:
        """The TOML key; dotted for a key inside a table (`aws.region` is region in [aws])."""
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()

    @property
    def duration(self) -> bool:
        """Seconds (`_s`), so "8h", "90m" or "1d" are read as in the org policy."""
        return self.path[-1].endswith("_s") and self.type in (int, float)

    @property
    def rules(self) -> tuple[str, ...]:
        """Everything checked at start, as the problem reported would word it."""
        if self.bounds is None:
            return self.checks
        low, high = self.bounds
        unit = " seconds" if self.path[-1].endswith("_s") else ""
        return (f"must be between {low:g} and {high:g}{unit}", *self.checks)


def setting_fields(
    struct: type[msgspec.Struct], path: tuple[str, ...] = ()
) -> tuple[SettingField, ...]:
    """Every setting of struct in definition order; a nested Struct's fields follow its path.

    Raises:
        TypeError: a constraint the start checks do not enforce (only ge with le is).
    """
    hints = get_type_hints(struct, include_extras=True)
    found: list[SettingField] = []
    for info in msgspec.structs.fields(struct):
        hint = hints[info.name]
        metas: tuple[object, ...] = ()
        if get_origin(hint) is Annotated:
            hint, metas = get_args(hint)[0], get_args(hint)[1:]
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            found.extend(setting_fields(hint, (*path, info.name)))
            continue
        meta = next((m for m in metas if isinstance(m, Meta)), Meta())
        if meta.gt is not None or meta.lt is not None or (meta.ge is None) != (meta.le is None):
            raise TypeError(f"{info.name}: declare a range as Meta(ge=..., le=...)")
        found.append(
            SettingField(
                path=(*path, info.name),
                type=hint,
                default=info.default_factory()
                if info.default_factory is not msgspec.NODEFAULT
                else info.default,
                description=meta.description or "",
                bounds=None if meta.ge is None or meta.le is None else (meta.ge, meta.le),
                checks=tuple((meta.extra or {}).get("checks", ())),
            )
        )
    return tuple(found)


FIELDS = setting_fields(Settings)
_BY_KEY = {f.key: f for f in FIELDS}
_BY_ENV = {f.env: f for f in FIELDS}
_TABLES = frozenset(f.path[0] for f in FIELDS if len(f.path) > 1)

BOUNDS: dict[str, tuple[float, float]] = {f.key: f.bounds for f in FIELDS if f.bounds}
"""Inclusive ranges checked at start, from the fields' `Meta(ge=..., le=...)`."""


class Renamed(NamedTuple):
    """A setting that moved: its old spelling is still read, with a deprecation notice."""

    old_key: str
    """The old top-level TOML key."""
    new_key: str
    old_env: str | None = None
    """The old variable, where the variable's name changed too."""

    def toml_notice(self, where: str) -> str:
        table, leaf = self.new_key.split(".")
        return (
            f"{where}: top-level {self.old_key!r} is deprecated: "
            f"write it as {leaf!r} in the [{table}] table"
        )

    def toml_clash(self, where: str) -> str:
        table, leaf = self.new_key.split(".")
        return (
            f"{where}: top-level {self.old_key!r} (deprecated) and {leaf!r} in [{table}] "
            f"are both given; remove {self.old_key!r}"
        )

    def env_notice(self) -> str:
        return f"{self.old_env} is deprecated: set {_BY_KEY[self.new_key].env} instead"

    def env_clash(self) -> str:
        new = _BY_KEY[self.new_key].env
        return f"{self.old_env} (deprecated) and {new} are both set; unset {self.old_env}"


RENAMED = (
    Renamed("aws_region", "aws.region"),
    Renamed("aws_endpoint_url", "aws.endpoint_url"),
    Renamed("sts_timeout_s", "aws.sts_timeout_s", "VOUCH_STS_TIMEOUT_S"),
    Renamed("sts_assertion_ttl_s", "aws.sts_assertion_ttl_s", "VOUCH_STS_ASSERTION_TTL_S"),
)
"""The flat AWS settings of earlier versions, now in [aws] (VOUCH_AWS_REGION and
VOUCH_AWS_ENDPOINT_URL kept their names)."""


class SettingsError(ValueError):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: list[str], deprecations: Iterable[str] = ()) -> None:
        lines = ["invalid configuration:", *(f"  - {p}" for p in problems)]
        self.deprecations = tuple(deprecations)
        if self.deprecations:  # they explain problems reported under the new names
            lines += ["deprecated settings in use:", *(f"  - {d}" for d in self.deprecations)]
        super().__init__("\n".join(lines))
        self.problems = problems


class LoadedSettings(NamedTuple):
    settings: Settings
    deprecations: tuple[str, ...]
    """One notice per old spelling read (see RENAMED); commands log them at start."""


def load_settings(
    env: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """The settings `read_settings` reads, without its deprecation notices.

    Raises:
        SettingsError: listing every problem found.
    """
    return read_settings(env, config_file, **overrides).settings


def read_settings(
    env: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> LoadedSettings:
    """Merge defaults < TOML file < VOUCH_* env < keyword overrides, then validate.

    Overrides are named like TOML keys, tables as mappings: `aws={"endpoint_url": url}`.

    Raises:
        SettingsError: listing every problem found.
        TypeError: an override that is not a setting.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    deprecations: list[str] = []
    raw: dict[str, Any] = {}
    path = config_file or (Path(env["VOUCH_CONFIG"]) if env.get("VOUCH_CONFIG") else None)
    if path is not None:
        raw.update(_read_toml(path, problems, deprecations))
    raw.update(_read_env(env, problems, deprecations))
    raw.update(_read_overrides(overrides))
    values = _convert_fields(raw, problems)
    # A value of the wrong type keeps its default here, so the ranges and files of every
    # other setting are still checked: one run lists every problem.
    settings = _build(Settings, values)
    problems.extend(_semantic_problems(settings))
    if problems:
        raise SettingsError(problems, deprecations)
    if not settings.origins:
        settings = msgspec.structs.replace(settings, origins=[_origin_of(settings.issuer)])
    return LoadedSettings(settings, tuple(deprecations))


def log_deprecations(deprecations: Iterable[str]) -> None:
    """Warn about each old spelling in use; `serve` and `dev` call this once at start."""
    log = logging.getLogger("vouch.settings")
    for notice in deprecations:
        log.warning("%s", notice)


def _read_toml(path: Path, problems: list[str], deprecations: list[str]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{path}: {exc.strerror or exc}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not TOML: {exc}")
        return {}
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
        return {}
    values: dict[str, Any] = {}
    old_keys = {r.old_key for r in RENAMED}
    for key, value in data.items():
        if key in _TABLES and isinstance(value, dict):
            values.update({f"{key}.{leaf}": item for leaf, item in value.items()})
        elif key in _TABLES:
            problems.append(f"{path}: {key!r} must be a table ([{key}])")
        elif key not in old_keys:
            values[key] = value
    problems.extend(f"{path}: unknown setting {key!r}" for key in values if key not in _BY_KEY)
    for renamed in (r for r in RENAMED if r.old_key in data):
        if renamed.new_key in values:
            problems.append(renamed.toml_clash(str(path)))
        else:
            values[renamed.new_key] = data[renamed.old_key]
            deprecations.append(renamed.toml_notice(str(path)))
    return {k: v for k, v in values.items() if k in _BY_KEY}


def _read_env(
    env: Mapping[str, str], problems: list[str], deprecations: list[str]
) -> dict[str, Any]:
    values = {f.key: _env_value(f, env[var]) for var, f in _BY_ENV.items() if var in env}
    for renamed in RENAMED:
        if renamed.old_env is None or renamed.old_env not in env:
            continue
        if renamed.new_key in values:
            problems.append(renamed.env_clash())
        else:
            values[renamed.new_key] = _env_value(_BY_KEY[renamed.new_key], env[renamed.old_env])
            deprecations.append(renamed.env_notice())
    return values


def _env_value(field: SettingField, text: str) -> Any:
    if get_origin(field.type) is list:  # lists are comma-separated in the environment
        return [s.strip() for s in text.split(",") if s.strip()]
    return text


def _read_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _TABLES and isinstance(value, Mapping):
            values.update({f"{key}.{leaf}": item for leaf, item in value.items()})
        else:
            values[key] = value
    unknown = sorted(set(values) - set(_BY_KEY))
    if unknown:
        raise TypeError(f"not settings: {', '.join(unknown)}")
    return values


def _convert_fields(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        field = _BY_KEY[key]
        seconds = (
            parse_duration(value.strip()) if field.duration and isinstance(value, str) else None
        )
        if seconds is not None:
            values[key] = seconds
            continue
        try:  # to the bare type: ranges are start checks, reported in their own words
            values[key] = msgspec.convert(value, field.type, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{field.env} / {field.key}: {_type_problem(field, value, exc)}")
    return values


def _type_problem(field: SettingField, value: Any, exc: msgspec.ValidationError) -> str:
    """What a value of the wrong type should have been, in words, with the value given."""
    if field.duration:
        number = "a whole number" if field.type is int else "a number"
        return f"must be {number} of seconds or a duration like 8h, 90m or 1h30m, not {value!r}"
    said = error_complaint(exc, field.key, given=value)
    return said.predicate if said.subject == field.key else str(said)


def _build(struct: type[msgspec.Struct], values: dict[str, Any], path: str = "") -> Any:
    """struct from converted values by dotted key; nested Structs built likewise."""
    hints = get_type_hints(struct)
    given: dict[str, Any] = {}
    for name in struct.__struct_fields__:
        hint, key = hints[name], f"{path}{name}"
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            given[name] = _build(hint, values, f"{key}.")
        elif key in values:
            given[name] = values[key]
    return struct(**given)


def _value(settings: Settings, key: str) -> Any:
    value: Any = settings
    for name in key.split("."):
        value = getattr(value, name)
    return value


def bound_rule(key: str) -> str:
    """How the range of a bounded setting is worded in problems and in the reference."""
    return _BY_KEY[key].rules[0]


def _semantic_problems(s: Settings) -> list[str]:
    problems = _url_problems(s)
    for key, (low, high) in BOUNDS.items():
        if not low <= _value(s, key) <= high:
            problems.append(f"{key}: {bound_rule(key)}")
    if s.signing_keys and s.kms_key_id:
        problems.append(f"signing_keys and kms_key_id: {ONE_SIGNER}")
    files = [("policy_file", s.policy_file)]
    if s.catalog_file:
        files.append(("catalog_file", s.catalog_file))
    if s.prices_file:
        files.append(("prices_file", s.prices_file))
    for key, name in files:
        if Path(name).is_dir():
            problems.append(f"{key}: {name} is a directory: give the TOML file in it")
        elif not Path(name).is_file():
            problems.append(f"{key}: no such file {name}")
    return problems


def _url_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    issuer = urlparse(s.issuer)
    local = issuer.hostname in {"localhost", "127.0.0.1", "::1"}
    if issuer.scheme != "https" and not (issuer.scheme == "http" and local):
        problems.append(f"issuer: {HTTPS_ISSUER}")
    if issuer.query or issuer.fragment or not issuer.hostname:
        problems.append(f"issuer: {BARE_ISSUER}")
    if urlparse(s.redis_url).scheme not in REDIS_SCHEMES:
        problems.append(f"redis_url: {REDIS_SCHEME}")
    problems.extend(
        f"origins: {o!r} is not an http(s) origin" for o in s.origins if not _is_origin(o)
    )
    return problems


def _origin_of(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def _is_origin(value: str) -> bool:
    parts = urlparse(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and parts.path in {"", "/"}
