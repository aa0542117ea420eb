"""IAM documents for a grant: the inline session policy, and the role's own policies.

The session policy allows exactly `bedrock:InvokeModel` and
`bedrock:InvokeModelWithResponseStream` (Converse and ConverseStream authorize as these)
on exact ARNs, and only before the delegation expires: every Allow carries
`DateLessThan aws:CurrentTime`, so AWS ends the credentials when the grant ends even when
STS's 900 s floor made them last longer. A profile grant allows the profile ARN, plus the
model in each destination region only when called through that profile
(`bedrock:InferenceProfileArn`), so the bare model stays denied. Output is compact, sorted
JSON: the same grant always gives the same text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from policies.catalog import REGION, Catalog, Entry
from policies.errors import SessionPolicyError, SessionPolicyTooLarge
from policies.identity import AGENT_PREFIX, PERSON_PREFIX

ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
SESSION_POLICY_LIMIT = 2048
"""STS's limit on the inline Policy parameter, in characters."""
ROLE_POLICY_LIMIT = 6144
"""IAM's limit on a managed policy (whitespace aside; our JSON has none)."""
TRUST_ACTIONS = ("sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity", "sts:TagSession")
AGENT_SUBJECTS = f"{AGENT_PREFIX}*"
"""What the agents role trusts: `agent.<name>.<email>`."""
PEOPLE_SUBJECTS = f"{PERSON_PREFIX}*"
"""What the people role trusts: `user.<email>`."""
VERSION = "2012-10-17"


def compile_session_policy(
    model_ids: Iterable[str], catalog: Catalog, *, region: str, account_id: str, expires_at: int
) -> str:
    """The inline session policy allowing exactly these canonical ids from region, until
    `expires_at` (epoch seconds: the delegation's end).

    Raises:
        UnknownModel: an id is not in the catalog.
        ModelNotCallable: an id cannot be invoked from region (profile-only model,
            profile of another geography).
        SessionPolicyTooLarge: over 2,048 characters (the time condition included); says
            what to drop.
    """
    return _within(
        sorted(set(model_ids)),
        catalog,
        region,
        account_id,
        SESSION_POLICY_LIMIT,
        expires_at=expires_at,
    )


def role_permissions_policy(
    model_ids: Iterable[str], catalog: Catalog, *, region: str, account_id: str
) -> str:
    """The role's permissions policy: every id the org policy allows (pass
    `OrgPolicy.allowed_models`). Effective rights are this ∩ each session policy.

    Raises:
        SessionPolicyTooLarge: over IAM's 6,144-character managed-policy limit.
    """
    ids = sorted(set(model_ids))
    return _within(ids, catalog, region, account_id, ROLE_POLICY_LIMIT, expires_at=None)


def trust_policy(
    *,
    issuer: str,
    account_id: str,
    audience: str = "sts.amazonaws.com",
    allow_local_http: bool = False,
    subjects: str = AGENT_SUBJECTS,
) -> str:
    """The role trust policy for the broker's IAM OIDC provider: only subs like `subjects`,
    `agent.*` for the agents role, `user.*` for the people role (neither matches the other).

    `allow_local_http` admits http://localhost[:port] issuers, for a local STS emulator only.

    Raises:
        SessionPolicyError: the issuer is not an https URL without port, query or fragment
            (what IAM accepts as an OIDC provider URL), or the account id is malformed.
    """
    provider = _provider(issuer, allow_local_http=allow_local_http)
    _check_account(account_id)
    statement = {
        "Action": list(TRUST_ACTIONS),
        "Condition": {
            "StringEquals": {f"{provider}:aud": audience},
            "StringLike": {f"{provider}:sub": subjects},
        },
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account_id}:oidc-provider/{provider}"},
    }
    return _render([statement])


def model_arn(region: str, model_id: str) -> str:
    """A foundation model's ARN; region "" gives the region-less ARN global profiles use."""
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def profile_arn(entry: Entry, region: str, account_id: str) -> str:
    """The ARN an agent invokes for a profile entry (and `bedrock:InferenceProfileArn`)."""
    if entry.kind == "application-inference-profile":
        return entry.id
    return f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{entry.id}"


def routed_model_arns(entry: Entry, region: str) -> tuple[str, ...]:
    """The model ARNs a profile's calls are authorized on, wherever AWS routes them."""
    if entry.regionless:
        return (model_arn(region, entry.model_id), model_arn("", entry.model_id))
    return tuple(model_arn(r, entry.model_id) for r in entry.regions)


def aws_time(epoch: int) -> str:
    """An instant as `aws:CurrentTime` compares it: ISO 8601 in UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _within(
    ids: list[str],
    catalog: Catalog,
    region: str,
    account_id: str,
    limit: int,
    *,
    expires_at: int | None,
) -> str:
    text = _render(_statements(ids, catalog, region, account_id, expires_at))
    if len(text) <= limit:
        return text
    suggestion = _what_to_drop(ids, catalog, region, account_id, expires_at)
    raise SessionPolicyTooLarge(len(text), limit, suggestion)


def _statements(
    ids: list[str], catalog: Catalog, region: str, account_id: str, expires_at: int | None
) -> list[dict[str, Any]]:
    """The Allow statements; with `expires_at`, each one ends then (the role policy does not)."""
    if not ids:
        raise SessionPolicyError("no models: a policy must allow at least one model")
    _check_account(account_id)
    if re.fullmatch(REGION, region) is None:
        raise SessionPolicyError(f"{region!r} is not an AWS region name")
    direct: set[str] = set()
    routed: dict[str, tuple[set[str], set[str]]] = {}
    for entry in (catalog.require_callable(i, region) for i in ids):
        if entry.kind == "foundation-model":
            direct.add(model_arn(region, entry.id))
            continue
        profile = profile_arn(entry, region, account_id)
        direct.add(profile)
        # One conditioned statement per model (not per profile): the profiles of one model
        # route only to that model, so sharing its condition grants nothing more, and saves
        # the repeated statement overhead against the 2,048-character budget.
        models, profiles = routed.setdefault(entry.model_id, (set(), set()))
        models.update(routed_model_arns(entry, region))
        profiles.add(profile)
    # DateLessThan on every Allow, not one Deny after the end: the session policy must stay
    # Allow-only (a Deny would also cut what the role grants outside Bedrock, and AWS
    # intersects session and role policies anyway), and this costs fewer characters.
    until = (
        {"DateLessThan": {"aws:CurrentTime": aws_time(expires_at)}}
        if expires_at is not None
        else {}
    )
    statements = [_allow(direct, until)]
    for _, (models, profiles) in sorted(routed.items()):
        condition = {"StringEquals": {"bedrock:InferenceProfileArn": sorted(profiles)}}
        statements.append(_allow(models, {**condition, **until}))
    return statements


def _allow(resources: set[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Action": list(ACTIONS), "Effect": "Allow"}
    statement["Resource"] = sorted(resources)
    if condition:
        statement["Condition"] = condition
    return statement


def _render(statements: list[dict[str, Any]]) -> str:
    # ensure_ascii keeps every character inside what STS accepts (U+0020-U+00FF).
    document = {"Statement": statements, "Version": VERSION}
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def _what_to_drop(
    ids: list[str], catalog: Catalog, region: str, account_id: str, expires_at: int | None
) -> str:
    if len(ids) == 1:
        return "even this one model does not fit; grant a global.* or application profile"

    def size(kept: list[str]) -> int:
        return len(_render(_statements(kept, catalog, region, account_id, expires_at)))

    full = size(ids)
    savings = sorted((full - size([j for j in ids if j != i]), i) for i in ids)
    saved, costliest = savings[-1]
    return (
        f"drop {catalog.short_name(costliest)} (saves {saved} characters) or grant fewer models;"
        " a global.* profile costs fewer characters than a geographic one"
    )


def _provider(issuer: str, *, allow_local_http: bool = False) -> str:
    parts = urlsplit(issuer)
    if allow_local_http and parts.scheme == "http" and parts.hostname == "localhost":
        return f"{parts.netloc}{parts.path.rstrip('/')}"
    if parts.scheme != "https" or not parts.hostname or parts.port or parts.query or parts.fragment:
        raise SessionPolicyError(
            f"issuer {issuer!r} cannot be an IAM OIDC provider: it must be https, without port,"
            " query or fragment"
        )
    return f"{parts.hostname}{parts.path.rstrip('/')}"


def _check_account(account_id: str) -> None:
    if re.fullmatch(r"[0-9]{12}", account_id) is None:
        raise SessionPolicyError(f"{account_id!r} is not a 12-digit AWS account id")
