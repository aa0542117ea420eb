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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from ._errors import ConfigError, GrantMismatch, InvalidResponse
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
    check_commitment(challenge_bytes(proposal.options.public_key), grant_digest(canonical), "grant")
    try:
        grant = msgspec.json.decode(canonical, type=Grant)
    except msgspec.DecodeError as exc:  # ValidationError included: JSON, but not a grant
        raise GrantMismatch(f"the canonical grant is not a grant ({exc})") from None
    if grant != proposal.grant:
        raise GrantMismatch("the proposal's grant differs from the canonical grant it signs")
    _check_shape(grant)
    return grant


def _check_shape(grant: Grant) -> None:
    """Raises: InvalidResponse for values no broker proposes (the types are checked already)."""
    if not grant.models or len(set(grant.models)) != len(grant.models):
        raise InvalidResponse("the broker proposed a model list that is empty or repeats a model")
    for name in ("ttl_s", "max_sts_s", "rate"):
        value = getattr(grant, name)
        if value is not None and value <= 0:
            raise InvalidResponse(f"the broker proposed {name}={value!r}, not a positive number")


def challenge_bytes(public_key: Mapping[str, Any]) -> bytes:
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


def check_requested_grant(
    grant: Grant,
    *,
    email: str | None,
    agent: str,
    models: Sequence[str],
    ttl_s: int,
    purpose: str,
    max_sts_s: int | None,
    rate: int | None,
    budget: str | None = None,
) -> None:
    """Refuse a proposal that differs from what the person asked in anything but
    canonicalization: the models as ids (see `check_models`), and an unset `rate` filled
    with the org policy's cap (a cap only narrows). Everything else must be equal.

    Raises:
        GrantMismatch: naming the first difference.
    """
    exact: dict[str, object] = {
        "email": email,
        "agent": agent,
        "ttl_s": ttl_s,
        "purpose": purpose,
        "max_sts_s": max_sts_s,
        "budget": budget,
    }
    if rate is not None:
        exact["rate"] = rate
    elif grant.rate is not None and grant.rate <= 0:
        raise GrantMismatch(f"the broker proposed rate={grant.rate!r}, which is not a cap")
    for name, wanted in exact.items():
        actual = getattr(grant, name)
        if actual != wanted and (name != "email" or wanted is not None):  # budget: as typed
            raise GrantMismatch(
                f"the broker proposed {name}={actual!r}, not the requested {wanted!r}"
            )
    check_models(models, grant.models)


_VERSION_WORD = re.compile(r"\d{1,2}")  # "claude-opus-4" + "-1-..." is another model


def names_model(name: str, model_id: str) -> bool:
    """Whether `name` can be what the broker resolved to `model_id`, judged by shape.

    The SDK does not have the catalog. A name stands for an id when it is that id, or when
    it is an alias (`claude-haiku-4-5`, or `us.claude-haiku-4-5` for the `us` profile) whose
    words begin the model part of the id (`[us.]anthropic.claude-haiku-4-5-20251001-v1:0`)
    and are not followed by another version number. Application-profile ARNs and aliases
    an org invents match only themselves.
    """
    if name == model_id:
        return True
    for geography, alias in _geography_splits(name):
        if not alias or "." in alias:
            continue
        for id_geography, rest in _geography_splits(model_id):
            provider, dot, model = rest.partition(".")
            if id_geography != geography or not dot or not provider:
                continue
            words, id_words = alias.split("-"), model.split("-")
            after = id_words[len(words)] if len(id_words) > len(words) else ""
            if id_words[: len(words)] == words and not _VERSION_WORD.fullmatch(after):
                return True
    return False


def _geography_splits(text: str) -> Iterator[tuple[str, str]]:
    yield "", text
    head, dot, rest = text.partition(".")
    if dot:
        yield head, rest


def check_models(requested: Sequence[str], proposed: Sequence[str]) -> None:
    """Refuse proposed models that are not, one for one, the requested names resolved.

    Each requested name must name a proposed id (`names_model`), no more ids than distinct
    names may come back, and each id must be the resolution of a different name.

    Raises:
        GrantMismatch: an added, substituted or missing model.
    """
    names = list(dict.fromkeys(requested))
    listed = ", ".join(proposed)
    if not proposed or len(set(proposed)) != len(proposed):
        raise GrantMismatch(f"the broker proposed a model list that is empty or repeats: {listed}")
    if len(proposed) > len(names):
        raise GrantMismatch(
            f"the broker proposed {len(proposed)} models for {len(names)} requested "
            f"({', '.join(names)} -> {listed}); refusing to sign"
        )
    candidates = {name: [m for m in proposed if names_model(name, m)] for name in names}
    for name, found in candidates.items():
        if not found:
            raise GrantMismatch(
                f"the broker proposed no model named by {name!r} (it proposed {listed}); "
                "refusing to sign. If those are right, name the models by these ids"
            )
    if not _one_name_each(candidates, proposed):
        raise GrantMismatch(f"the broker proposed models that were not requested: {listed}")


def _one_name_each(candidates: Mapping[str, list[str]], models: Sequence[str]) -> bool:
    """Whether each model can be the resolution of a different requested name."""
    owner: dict[str, str] = {}  # name -> the model it is assigned

    def place(model: str, tried: set[str]) -> bool:
        for name, found in candidates.items():
            if model in found and name not in tried:
                tried.add(name)
                if name not in owner or place(owner[name], tried):
                    owner[name] = model
                    return True
        return False

    return all(place(model, set()) for model in models)


def check_commitment(challenge: bytes, digest: bytes, what: str) -> None:
    """The challenge must be `nonce || digest` of exactly what is shown.

    Raises:
        GrantMismatch: it commits to something else; nothing is signed.
    """
    if len(challenge) != NONCE_BYTES + 32 or not hmac.compare_digest(
        challenge[NONCE_BYTES:], digest
    ):
        raise GrantMismatch(
            f"the security key challenge does not commit to the {what} shown; refusing to sign"
        )
