"""Judge a role's trust policy for a web identity caller with the project's IAM evaluator.

The evaluator in `policies` judges identity-style statements; a trust policy is a resource
policy. So we keep the statements whose Principal names the caller's OIDC provider, drop
the Principal and give each the role as its Resource, then ask the evaluator per action.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from policies.conditions import ContextValue
from policies.errors import EvaluationError
from policies.evaluator import Outcome, Request, evaluate
from tests.harness.sts_checks import access_denied


def _principal_matches(principal: object, provider_arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for kind, value in principal.items():
        values = value if isinstance(value, list) else [value]
        if (kind == "Federated" and provider_arn in values) or (kind == "AWS" and "*" in values):
            return True
    return False


def _applies_to(statement: Mapping[str, Any], provider_arn: str) -> bool:
    if "Principal" in statement:
        return _principal_matches(statement["Principal"], provider_arn)
    if "NotPrincipal" in statement:
        return not _principal_matches(statement["NotPrincipal"], provider_arn)
    return False


def as_identity_policy(
    document: Mapping[str, Any] | str, role_arn: str, provider_arn: str
) -> dict[str, Any]:
    """The trust statements that apply to this provider, rewritten as an identity policy."""
    if isinstance(document, str):
        document = json.loads(document)
    assert isinstance(document, Mapping)
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    statements = []
    for statement in items:
        if not isinstance(statement, Mapping) or not _applies_to(statement, provider_arn):
            continue
        rewritten = {k: v for k, v in statement.items() if k not in ("Principal", "NotPrincipal")}
        if "Resource" not in rewritten and "NotResource" not in rewritten:
            rewritten["Resource"] = role_arn
        statements.append(rewritten)
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def check_trust(
    document: Mapping[str, Any] | str,
    *,
    role_arn: str,
    provider_arn: str,
    actions: Sequence[str],
    context: Mapping[str, ContextValue],
) -> None:
    """Every action must be allowed by the trust policy for this caller.

    Raises:
        StsError: AccessDenied (403), also when the policy cannot be judged exactly.
    """
    policy = as_identity_policy(document, role_arn, provider_arn)
    for action in actions:
        try:
            decision = evaluate(Request(action, role_arn, context), [policy])
        except EvaluationError as exc:
            raise access_denied(
                f"Not authorized to perform {action}: the trust policy cannot be evaluated ({exc})"
            ) from None
        if decision.outcome is Outcome.EXPLICIT_DENY:
            raise access_denied(
                f"Not authorized to perform {action} (an explicit Deny in the trust policy)"
            )
        if not decision.allowed:
            raise access_denied(
                f"Not authorized to perform {action} (no trust policy statement allows it "
                "for this provider and these aud, sub, session name and tags)"
            )
