"""Where an agent's token comes from, what it claims, and which broker it belongs to.

The SDK never verifies the token: the broker does on every exchange. It only reads the
payload to learn the issuer (the default broker URL) and to show what was granted.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._secrets import hidden
from ._transport import normalize_server

TOKEN_ENV = "VOUCH_AGENT_TOKEN"  # noqa: S105 -- a variable name, not a secret
TOKEN_FILE_ENV = "VOUCH_AGENT_TOKEN_FILE"  # noqa: S105
SERVER_ENV = "VOUCH_SERVER"


def issuer_url(token: str, path: str) -> str | None:
    """`path` at the token's issuer (its `iss`, unverified), or None when it names none."""
    try:
        issuer = claims_of(token).get("iss")
    except ConfigError:
        return None
    if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
        return None
    return issuer.rstrip("/") + path


def claims_of(token: str) -> dict[str, Any]:
    """The JWT payload, decoded without verifying anything.

    Raises:
        ConfigError: not a compact JWS with a JSON object payload.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ConfigError("the agent token is not a JWT (expected three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except ValueError:
        raise ConfigError("the agent token's payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise ConfigError("the agent token's payload is not a JSON object")
    return claims


def read_token_file(path: Path) -> str:
    """The token in `path`, refusing a file that others on this machine could read.

    Raises:
        ConfigError: missing, unreadable, empty, or readable/writable by group or others.
    """
    try:
        info = path.stat()
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"token file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token


@dataclass(frozen=True)
class TokenSource:
    """A token given directly, or a file reread on every use so a rotated file takes effect."""

    token: str | None = None
    path: Path | None = None

    def __repr__(self) -> str:  # the token must not reach a traceback or a log
        if self.token is not None:
            return f"TokenSource(token={hidden(self.token)})"
        return f"TokenSource(path={self.path!r})"

    def read(self) -> str:
        """Raises: ConfigError (see `read_token_file`)."""
        if self.token is not None:
            return self.token
        assert self.path is not None, "TokenSource needs a token or a path"
        return read_token_file(self.path)


def token_source(
    token: str | None, token_file: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> TokenSource:
    """The argument, else VOUCH_AGENT_TOKEN, else VOUCH_AGENT_TOKEN_FILE.

    Raises:
        ConfigError: none of them is set.
    """
    if token:
        return TokenSource(token=token.strip())
    if token_file:
        return TokenSource(path=Path(token_file).expanduser())
    if env.get(TOKEN_ENV, "").strip():
        return TokenSource(token=env[TOKEN_ENV].strip())
    if env.get(TOKEN_FILE_ENV, "").strip():
        return TokenSource(path=Path(env[TOKEN_FILE_ENV]).expanduser())
    raise ConfigError(
        f"no agent token: pass token= or token_file=, or set {TOKEN_ENV} or {TOKEN_FILE_ENV}"
    )


def resolve_server(server: str | None, token: str | None, env: Mapping[str, str]) -> str:
    """The broker URL: the argument, else VOUCH_SERVER, else the token's `iss`.

    Raises:
        ConfigError: none of them gives a usable http(s) URL.
    """
    if server:
        return normalize_server(server)
    if env.get(SERVER_ENV, "").strip():
        return normalize_server(env[SERVER_ENV])
    issuer = claims_of(token).get("iss") if token else None
    if isinstance(issuer, str) and issuer:
        return normalize_server(issuer)
    raise ConfigError(f"no broker URL: pass server=, set {SERVER_ENV}, or use a token with `iss`")
