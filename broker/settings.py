"""Broker settings: one msgspec Struct from a TOML file and `VOUCH_*` variables.

Every problem is collected and reported at once, so an operator fixes a config in one pass.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlparse

import msgspec

ENV_PREFIX = "VOUCH_"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster"})
EXAMPLE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "examples" / "org.toml"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the broker reads at start. Field docs feed the configuration reference."""

    issuer: str = "http://localhost:8080"
    """The OIDC issuer URL (`iss` of every token); https except for localhost development."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Where all broker state lives: redis://, rediss://, unix://, redis+sentinel://, redis+cluster://."""
    revocation_replicas: int = 0
    """Replicas that must hold a revocation (Redis WAIT) before the API acknowledges it."""
    revocation_wait_ms: int = 500
    """How long to wait for those replicas before answering 503 (the revocation stands)."""
    redis_timeout_s: float = 0.5
    """Upper bound on one Redis round trip; past it the request fails closed with 503."""
    signing_keys: str | None = None
    """Directory of PEM signing keys (see `vouch-broker keys`). Required unless kms_key_id."""
    kms_key_id: str | None = None
    """AWS KMS key (ECC_NIST_P256) to sign with instead of local PEM files."""
    policy_file: str = str(EXAMPLE_POLICY)
    """The org policy (TOML): who may delegate which models, limits, admins, AWS role."""
    catalog_file: str | None = None
    """Optional TOML extending the built-in Bedrock model catalog."""
    rp_id: str = "localhost"
    """WebAuthn relying-party id: the broker's host name (or a registrable parent)."""
    rp_name: str = "Vouch"
    """Relying-party name shown by authenticators that display one."""
    allow_software_keys: bool = False
    """Accept the vouch software authenticator (tests and demos only; it is not hardware)."""
    aaguids: list[str] = msgspec.field(default_factory=list)
    """Allow-list of authenticator models (AAGUIDs); empty allows any hardware key."""
    origins: list[str] = msgspec.field(default_factory=list)
    """Origins accepted in FIDO2 client data; defaults to the issuer's origin."""
    aws_region: str = "us-east-1"
    """Region of the STS endpoint the broker calls."""
    aws_endpoint_url: str | None = None
    """A local STS (moto server) for development and tests; unset for real AWS."""
    session_ttl_s: int = 8 * 3600
    """Lifetime of a human session token."""
    challenge_ttl_s: int = 120
    """Lifetime of a WebAuthn challenge (at most 120 s)."""
    request_ttl_s: int = 300
    """How long an agent's delegation request waits for the person to approve it."""
    invite_ttl_s: int = 24 * 3600
    """Lifetime of a one-time invite code."""
    clock_leeway_s: int = 30
    """Clock skew tolerated when checking token times."""
    sts_timeout_s: float = 2.5
    """Connect and read timeout of one STS call; with 3 attempts a refusal comes in ~8 s."""
    sts_assertion_ttl_s: int = 300
    """Lifetime of the assertion the broker presents to STS (at most 300 s)."""
    log_level: str = "INFO"
    """Python logging level of the JSON logs."""
    audit_max_len: int = 100_000
    """Approximate cap on the audit stream length."""
    rate_login_per_min: int = 30
    """Login and enroll attempts per minute, per client address and per email."""
    rate_requests_per_min: int = 20
    """Agent delegation requests per minute, per client address and per email asked."""
    rate_approvals_per_min: int = 10
    """User-code lookups (approve or deny) per minute, per client address and per person."""
    rate_polls_per_min: int = 120
    """Delegation-request polls per minute, per client address and per request."""


_ENV_NAMES = {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.__struct_fields__}


class SettingsError(ValueError):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def load_settings(
    env: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Merge defaults < TOML file < VOUCH_* env < keyword overrides, then validate.

    Raises:
        SettingsError: listing every problem found.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    raw: dict[str, Any] = {}
    path = config_file or (Path(env["VOUCH_CONFIG"]) if env.get("VOUCH_CONFIG") else None)
    if path is not None:
        raw.update(_read_toml(path, problems))
    raw.update(_read_env(env))
    raw.update(overrides)
    values = _convert_fields(raw, problems)
    settings = Settings(**values) if not problems else None
    if settings is not None:
        problems.extend(_semantic_problems(settings))
    if problems or settings is None:
        raise SettingsError(problems)
    if not settings.origins:
        settings = msgspec.structs.replace(settings, origins=[_origin_of(settings.issuer)])
    return settings


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{path}: {exc}")
        return {}
    unknown = sorted(set(data) - set(Settings.__struct_fields__))
    problems.extend(f"{path}: unknown setting {key!r}" for key in unknown)
    return {k: v for k, v in data.items() if k not in unknown}


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, name in _ENV_NAMES.items():
        if var in env:
            text = env[var]
            is_list = name in {"origins", "aaguids"}
            values[name] = [s.strip() for s in text.split(",") if s.strip()] if is_list else text
    return values


def _convert_fields(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            values[name] = msgspec.convert(value, hints[name], strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{ENV_PREFIX}{name.upper()} / {name}: {exc} (got {value!r})")
    return values


BOUNDS: dict[str, tuple[float, float]] = {
    "request_ttl_s": (1, 3600),
    "challenge_ttl_s": (1, 120),
    "sts_assertion_ttl_s": (30, 300),
    "session_ttl_s": (60, 24 * 3600),
    "clock_leeway_s": (0, 300),
    "sts_timeout_s": (0.05, 30),
    "redis_timeout_s": (0.01, 30),
}
"""Inclusive ranges checked at start (the configuration reference shows them too)."""


def bound_rule(name: str) -> str:
    low, high = BOUNDS[name]
    return f"must be between {low:g} and {high:g} seconds"


def _semantic_problems(s: Settings) -> list[str]:
    problems = _url_problems(s)
    for name, (low, high) in BOUNDS.items():
        if not low <= getattr(s, name) <= high:
            problems.append(f"{name}: {bound_rule(name)}")
    if s.signing_keys and s.kms_key_id:
        problems.append("signing_keys and kms_key_id: set one, not both")
    if not Path(s.policy_file).is_file():
        problems.append(f"policy_file: no such file {s.policy_file}")
    if s.catalog_file and not Path(s.catalog_file).is_file():
        problems.append(f"catalog_file: no such file {s.catalog_file}")
    return problems


def _url_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    issuer = urlparse(s.issuer)
    local = issuer.hostname in {"localhost", "127.0.0.1", "::1"}
    if issuer.scheme != "https" and not (issuer.scheme == "http" and local):
        problems.append("issuer: must be an https URL (plain http only for localhost)")
    if issuer.query or issuer.fragment or not issuer.hostname:
        problems.append("issuer: must be a bare URL without query or fragment")
    if urlparse(s.redis_url).scheme not in REDIS_SCHEMES:
        problems.append(f"redis_url: scheme must be one of {', '.join(sorted(REDIS_SCHEMES))}")
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
