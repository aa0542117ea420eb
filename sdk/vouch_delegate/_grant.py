"""Grants as people read them: durations, and the check that a key tap signs what is shown.

The broker binds a delegation's WebAuthn challenge to the grant:
``challenge = nonce(16) || SHA-256(b"vouch-grant-v1\\x00" + grant_canonical)``. Before the
person taps, the CLI recomputes the digest over the canonical grant it is about to show;
if the broker (or anything between) swapped either, the tap would approve something
unseen, so the CLI refuses instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ._errors import ConfigError, GrantMismatch
from ._messages import DelegationProposal, Grant

DOMAIN = b"vouch-grant-v1\x00"
NONCE_BYTES = 16
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:(\d+)([smhd]))+")
_PART = re.compile(r"(\d+)([smhd])")


def parse_duration(value: str | int) -> int:
    """Seconds in "2h", "90m", "1h30m", "45s", "1d" or a plain number of seconds.

    Raises:
        ConfigError: anything else, or zero.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ConfigError(f"not a duration: {value!r} (use e.g. 2h, 90m, 1h30m or 3600)")
    if seconds <= 0:
        raise ConfigError(f"a duration must be positive, not {value!r}")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest "1h30m" form of a number of seconds."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def grant_digest(canonical: str) -> bytes:
    return hashlib.sha256(DOMAIN + canonical.encode("utf-8")).digest()


def verified_grant(proposal: DelegationProposal) -> Grant:
    """The grant a delegation proposal asks the key to sign, once its challenge checks out.

    Display this (it is parsed from the signed bytes), never `proposal.grant` alone.

    Raises:
        GrantMismatch: the challenge does not commit to `grant_canonical`, or the
            proposal's `grant` object says something else.
    """
    canonical = proposal.grant_canonical
    challenge = _challenge_bytes(proposal.options.public_key)
    if len(challenge) != NONCE_BYTES + 32 or not hmac.compare_digest(
        challenge[NONCE_BYTES:], grant_digest(canonical)
    ):
        raise GrantMismatch(
            "the security key challenge does not commit to the grant shown; refusing to sign"
        )
    try:
        grant = msgspec.json.decode(canonical, type=Grant)
    except msgspec.DecodeError as exc:  # ValidationError included: JSON, but not a grant
        raise GrantMismatch(f"the canonical grant is not a grant ({exc})") from None
    if grant != proposal.grant:
        raise GrantMismatch("the proposal's grant differs from the canonical grant it signs")
    return grant


def _challenge_bytes(public_key: Mapping[str, Any]) -> bytes:
    try:
        encoded = public_key["challenge"]
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise GrantMismatch("the broker's proposal carries no readable challenge") from None


def check_grant_matches(grant: Grant, expected: Mapping[str, object]) -> None:
    """Refuse a grant that differs from what the person asked for in the fields they set.

    Raises:
        GrantMismatch: naming the first field that differs.
    """
    for name, wanted in expected.items():
        actual = getattr(grant, name, None)
        if wanted is not None and actual != wanted:
            raise GrantMismatch(
                f"the broker proposed {name}={actual!r}, not the requested {wanted!r}"
            )
