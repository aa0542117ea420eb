"""The request, claim, tag and policy checks AWS STS makes and moto skips.

Every failed check raises `StsError` with the code, message and HTTP status AWS answers.
The checks take parsed data and a clock value; the gate (sts_gate.py) does the I/O.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
SKEW_S = 300
MAX_TAGS = 50
PACKED_LIMIT = 2048
"""Bytes our packed-size approximation may use; see `packed_percent`."""

_SESSION_NAME = re.compile(r"[\w+=,.@-]*", re.ASCII)
_SOURCE_IDENTITY = re.compile(r"[\w+=,.@-]*", re.ASCII)
_POLICY_CHARS = re.compile(r"[\t\n\r\u0020-\u00ff]+")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_REDACTED = "*** sensitive data redacted ***"


class StsError(Exception):
    """An AWS-shaped STS error: code, message, HTTP status, fault type."""

    def __init__(self, code: str, message: str, status: int = 400, fault: str = "Sender") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fault = fault


def invalid_token(message: str) -> StsError:
    return StsError("InvalidIdentityToken", message)


def access_denied(
    message: str = "Not authorized to perform sts:AssumeRoleWithWebIdentity",
) -> StsError:
    return StsError("AccessDenied", message, status=403)


@dataclass(frozen=True)
class Params:
    """The AssumeRoleWithWebIdentity parameters as sent (form-encoded, query protocol)."""

    role_arn: str
    session_name: str
    token: str
    policy: str | None
    duration_s: int


@dataclass(frozen=True)
class SessionTags:
    """Tags from the token's `https://aws.amazon.com/tags` claim."""

    tags: dict[str, str] = field(default_factory=dict)
    transitive: tuple[str, ...] = ()


def _utf16_len(text: str) -> int:
    # AWS (Java) counts UTF-16 code units: a character outside the BMP counts twice.
    return len(text.encode("utf-16-le")) // 2


def _length(problems: list[str], name: str, value: str, low: int, high: int, shown: str) -> None:
    size = _utf16_len(value)
    if size < low:
        problems.append(
            f"Value '{shown}' at '{name}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if size > high:
        problems.append(
            f"Value '{shown}' at '{name}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )


def _validation_error(problems: list[str]) -> StsError:
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    return StsError(
        "ValidationError", f"{count} validation {noun} detected: " + "; ".join(problems)
    )


def parse_params(form: Mapping[str, str]) -> Params:
    """Validate the parameters like AWS's request validation: every problem in one error.

    Raises:
        StsError: ValidationError listing each constraint that failed.
    """
    problems: list[str] = []
    for name, key in (("roleArn", "RoleArn"), ("roleSessionName", "RoleSessionName")):
        if key not in form:
            problems.append(
                f"Value null at '{name}' failed to satisfy constraint: Member must not be null"
            )
    if "WebIdentityToken" not in form:
        problems.append(
            "Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null"
        )
    role_arn = form.get("RoleArn", "")
    session_name = form.get("RoleSessionName", "")
    token = form.get("WebIdentityToken", "")
    if "RoleArn" in form:
        _length(problems, "roleArn", role_arn, 20, 2048, role_arn)
    if "RoleSessionName" in form:
        _length(problems, "roleSessionName", session_name, 2, 64, session_name)
        if not _SESSION_NAME.fullmatch(session_name):
            problems.append(
                f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: "
                r"Member must satisfy regular expression pattern: [\w+=,.@-]*"
            )
    if "WebIdentityToken" in form:
        _length(problems, "webIdentityToken", token, 4, 20_000, _REDACTED)
    policy = form.get("Policy")
    if policy is not None:
        _length(problems, "policy", policy, 1, 2048, policy)
        if policy and not _POLICY_CHARS.fullmatch(policy):
            problems.append(
                f"Value '{policy}' at 'policy' failed to satisfy constraint: Member must satisfy "
                r"regular expression pattern: [\u0009\u000A\u000D\u0020-\u00FF]+"
            )
    duration = _duration(form.get("DurationSeconds"), problems)
    if problems:
        raise _validation_error(problems)
    return Params(role_arn, session_name, token, policy, duration)


def _duration(raw: str | None, problems: list[str]) -> int:
    if raw is None:
        return 3600
    try:
        value = int(raw)
    except ValueError:
        problems.append(
            f"Value '{raw}' at 'durationSeconds' failed to satisfy constraint: "
            "Member must be an integer"
        )
        return 0
    if value < 900:
        problems.append(
            f"Value '{value}' at 'durationSeconds' failed to satisfy constraint: "
            "Member must have value greater than or equal to 900"
        )
    if value > 43_200:
        problems.append(
            f"Value '{value}' at 'durationSeconds' failed to satisfy constraint: "
            "Member must have value less than or equal to 43200"
        )
    return value


def check_claims(claims: Mapping[str, Any], now: float, skew_s: int = SKEW_S) -> None:
    """Required claims with integer timestamps; exp not passed; iat and nbf not in the future.

    Raises:
        StsError: InvalidIdentityToken, or ExpiredTokenException for a passed `exp`.
    """
    for name in ("iss", "aud", "sub"):
        value = claims.get(name)
        if (
            name == "aud"
            and isinstance(value, list)
            and value
            and all(isinstance(a, str) for a in value)
        ):
            continue
        if not isinstance(value, str) or not value:
            raise invalid_token(f"Missing or invalid required claim: {name}")
    for name in ("iat", "exp"):
        if not _is_int(claims.get(name)):
            raise invalid_token(
                f"Missing or invalid required claim: {name} (an integer NumericDate)"
            )
    if "nbf" in claims and not _is_int(claims["nbf"]):
        raise invalid_token("Invalid claim: nbf (an integer NumericDate)")
    exp, iat = int(claims["exp"]), int(claims["iat"])
    # Strict on exp (no skew): a test gate should not let a broker lean on leniency.
    if now >= exp:
        raise StsError(
            "ExpiredTokenException",
            f"Token expired: current date/time {int(now)} must be before "
            f"the expiration date/time {exp}",
        )
    if iat > now + skew_s:
        raise invalid_token(
            f"Token used before issued: iat {iat} is in the future (now {int(now)})"
        )
    if "nbf" in claims and int(claims["nbf"]) > now + skew_s:
        raise invalid_token(f"Token not yet valid: nbf {claims['nbf']} is in the future")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def matched_audience(claims: Mapping[str, Any], client_ids: list[str]) -> str:
    """The token audience that the provider's client-id list names.

    Raises:
        StsError: InvalidIdentityToken "Incorrect token audience".
    """
    aud = claims["aud"]
    for candidate in aud if isinstance(aud, list) else [aud]:
        if candidate in client_ids:
            return str(candidate)
    raise invalid_token("Incorrect token audience")


def _tags_error(detail: str) -> StsError:
    return StsError("ValidationError", f"Unable to validate tags: {detail}")


def _tag_text_ok(text: str) -> bool:
    # AWS: [\p{L}\p{Z}\p{N}_.:/=+\-@]*
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def session_tags(claims: Mapping[str, Any]) -> SessionTags:
    """The token's session tags, checked against AWS's limits.

    Raises:
        StsError: ValidationError ("Unable to validate tags: ...").
    """
    raw = claims.get(TAGS_CLAIM)
    if raw is None:
        return SessionTags()
    if not isinstance(raw, dict) or not isinstance(raw.get("principal_tags", {}), dict):
        raise _tags_error(f"{TAGS_CLAIM} must be an object with a principal_tags object")
    tags: dict[str, str] = {}
    for key, values in raw.get("principal_tags", {}).items():
        if not (isinstance(values, list) and len(values) == 1 and isinstance(values[0], str)):
            raise _tags_error(f"tag {key!r} must have exactly one string value")
        _check_tag(key, values[0], tags)
        tags[key] = values[0]
    if len(tags) > MAX_TAGS:
        raise _tags_error(f"{len(tags)} session tags; at most {MAX_TAGS} are allowed")
    transitive = raw.get("transitive_tag_keys", [])
    if not isinstance(transitive, list) or not all(isinstance(k, str) for k in transitive):
        raise _tags_error("transitive_tag_keys must be a list of strings")
    lowered = {k.lower() for k in tags}
    missing = [k for k in transitive if k.lower() not in lowered]
    if missing:
        raise _tags_error(f"transitive tag keys {missing} are not session tag keys")
    return SessionTags(tags, tuple(transitive))


def _check_tag(key: str, value: str, seen: Mapping[str, str]) -> None:
    if not 1 <= _utf16_len(key) <= 128 or not _tag_text_ok(key):
        raise _tags_error(
            f"tag key {key!r} must be 1-128 characters of [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+-@]"
        )
    if _utf16_len(value) > 256 or not _tag_text_ok(value):
        raise _tags_error(
            f"value of tag {key!r} must be 0-256 characters of [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+-@]"
        )
    if key.lower().startswith("aws:"):
        raise _tags_error(f"tag key {key!r} uses the reserved prefix aws:")
    if key.lower() in {k.lower() for k in seen}:
        raise _tags_error(f"tag key {key!r} repeats a key that differs only in case")


def source_identity(claims: Mapping[str, Any]) -> str | None:
    """The token's source identity, checked like AWS's SourceIdentity parameter.

    The pattern has no colon, so the reserved `aws:` prefix cannot pass it either.

    Raises:
        StsError: ValidationError.
    """
    value = claims.get(SOURCE_IDENTITY_CLAIM)
    if value is None:
        return None
    shown = value if isinstance(value, str) else json.dumps(value)
    problems: list[str] = []
    if not isinstance(value, str):
        problems.append(
            f"Value '{shown}' at 'sourceIdentity' failed to satisfy constraint: "
            "Member must be a string"
        )
    else:
        _length(problems, "sourceIdentity", value, 2, 64, shown)
        if not _SOURCE_IDENTITY.fullmatch(value):
            problems.append(
                f"Value '{shown}' at 'sourceIdentity' failed to satisfy constraint: "
                r"Member must satisfy regular expression pattern: [\w+=,.@-]*"
            )
    if problems or not isinstance(value, str):
        raise _validation_error(problems)
    return value


def _malformed(message: str) -> StsError:
    return StsError("MalformedPolicyDocument", message)


def check_policy(text: str) -> None:
    """The session policy's grammar, roughly as IAM checks it.

    Raises:
        StsError: MalformedPolicyDocument.
    """
    try:
        document = json.loads(text)
    except ValueError:
        raise _malformed("The policy is not in the valid JSON format.") from None
    if not isinstance(document, dict):
        raise _malformed("Syntax errors in policy.")
    if document.get("Version") not in ("2012-10-17", "2008-10-17"):
        raise _malformed("The policy must contain a valid version string")
    statements = document.get("Statement")
    items = statements if isinstance(statements, list) else [statements]
    if statements is None or not items:
        raise _malformed("Syntax errors in policy.")
    for statement in items:
        _check_statement(statement)


def _check_statement(statement: object) -> None:
    if not isinstance(statement, dict):
        raise _malformed("Syntax errors in policy.")
    if "Principal" in statement or "NotPrincipal" in statement:
        raise _malformed("Policy document should not specify a principal.")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise _malformed("Syntax errors in policy.")
    if ("Action" in statement) == ("NotAction" in statement):
        raise _malformed("Policy statement must contain actions.")
    if ("Resource" in statement) == ("NotResource" in statement):
        raise _malformed("Policy statement must contain resources.")
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        raise _malformed("Syntax errors in policy.")


def packed_percent(policy: str | None, tags: SessionTags) -> int:
    """Approximate PackedPolicySize in percent.

    AWS compresses the session policy and tags into a binary format with an undocumented
    limit. We approximate it as: zlib-compressed whitespace-free policy JSON, plus each tag
    key and value in UTF-8 with 4 bytes of framing, plus each transitive key, against a
    budget of PACKED_LIMIT (2,048) bytes. Any 2,048-character policy with a few short tags
    fits; 50 maximal tags do not.
    """
    size = 0
    if policy:
        compact = json.dumps(json.loads(policy), separators=(",", ":"), sort_keys=True)
        size += len(zlib.compress(compact.encode("utf-8"), 9))
    size += sum(len(k.encode()) + len(v.encode()) + 4 for k, v in tags.tags.items())
    size += sum(len(k.encode()) + 2 for k in tags.transitive)
    return -(-size * 100 // PACKED_LIMIT)


def check_packed(policy: str | None, tags: SessionTags) -> int:
    """The packed size in percent when it fits.

    Raises:
        StsError: PackedPolicyTooLarge.
    """
    percent = packed_percent(policy, tags)
    if percent > 100:
        raise StsError(
            "PackedPolicyTooLarge",
            f"Packed policy consumes {percent}% of allotted space, please use smaller policy.",
        )
    return percent
