"""A small, exact IAM evaluator for identity and session policies.

It answers what AWS would for one request when only identity-based policies and session
policies apply (no resource policies, boundaries or SCPs):
1. an explicit Deny in any policy wins;
2. otherwise an identity policy must Allow it;
3. and, when session policies are given, every one of them must Allow it too
   (effective rights = role policies ∩ session policies).
Resource patterns follow AWS's wildcard rules for resource ARNs (resources.py), which are
not those of the ArnLike condition operator (conditions.py).
Tests use it to prove that a compiled session policy allows exactly the granted models;
moto cannot, because its IAM emulation ignores session policies.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from policies.conditions import Condition, ContextValue, glob, parse_conditions
from policies.errors import EvaluationError
from policies.resources import resource_matches

PolicyDocument = str | Mapping[str, Any]
"""A policy as JSON text or as its parsed object."""

_VERSIONS = ("2012-10-17", "2008-10-17")
_ELEMENTS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it: action, resource ARN and the request context."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


@dataclass(frozen=True)
class StatementRef:
    """Which statement decided: the policy set, the policy's index, the statement's index."""

    kind: Literal["identity", "session"]
    policy: int
    statement: int
    sid: str | None = None

    def __str__(self) -> str:
        sid = f" ({self.sid})" if self.sid else ""
        return f"{self.kind} policy {self.policy} statement {self.statement}{sid}"


@dataclass(frozen=True)
class Decision:
    """The outcome, the statements that decided it (none for an implicit deny), and why."""

    outcome: Outcome
    statements: tuple[StatementRef, ...]
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


@dataclass(frozen=True)
class _Statement:
    ref: StatementRef
    allow: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    def applies(self, request: Request, context: Mapping[str, ContextValue]) -> bool:
        action = any(glob(a, ignore_case=True).fullmatch(request.action) for a in self.actions)
        resource = any(resource_matches(request.resource, r) for r in self.resources)
        return (
            action is not self.not_action
            and resource is not self.not_resource
            and all(c.matches(context) for c in self.conditions)
        )


def evaluate(
    request: Request,
    identity_policies: Sequence[PolicyDocument],
    session_policies: Sequence[PolicyDocument] | None = None,
) -> Decision:
    """AWS's decision for request under these policies.

    Raises:
        EvaluationError: a policy it cannot judge exactly (unknown operator, policy
            variable, malformed element) or a request context it cannot compare.
    """
    identity = _parse_all("identity", identity_policies)
    sessions = [_parse("session", i, p) for i, p in enumerate(session_policies or ())]
    context = _context(request.context)
    for statement in [*identity, *(s for policy in sessions for s in policy)]:
        if not statement.allow and statement.applies(request, context):
            return Decision(Outcome.EXPLICIT_DENY, (statement.ref,), f"denied by {statement.ref}")
    allowed_by = _first_allow(identity, request, context)
    if allowed_by is None:
        return Decision(Outcome.IMPLICIT_DENY, (), "no identity policy allows it")
    refs = [allowed_by]
    for i, policy in enumerate(sessions):
        ref = _first_allow(policy, request, context)
        if ref is None:
            return Decision(Outcome.IMPLICIT_DENY, (), f"session policy {i} does not allow it")
        refs.append(ref)
    return Decision(Outcome.ALLOW, tuple(refs), "allowed by " + ", ".join(map(str, refs)))


def _first_allow(
    statements: Iterable[_Statement], request: Request, context: Mapping[str, ContextValue]
) -> StatementRef | None:
    return next((s.ref for s in statements if s.allow and s.applies(request, context)), None)


def _context(context: Mapping[str, ContextValue]) -> dict[str, ContextValue]:
    lowered = {key.lower(): value for key, value in context.items()}
    if len(lowered) != len(context):
        raise EvaluationError("request context repeats a key in different case")
    return lowered


def _parse_all(
    kind: Literal["identity", "session"], policies: Sequence[PolicyDocument]
) -> list[_Statement]:
    return [s for i, p in enumerate(policies) for s in _parse(kind, i, p)]


def _parse(
    kind: Literal["identity", "session"], index: int, document: PolicyDocument
) -> list[_Statement]:
    where = f"{kind} policy {index}"
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise EvaluationError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise EvaluationError(f"{where}: expected an object with a Statement")
    if document.get("Version", _VERSIONS[0]) not in _VERSIONS:
        raise EvaluationError(f"{where}: unknown Version {document['Version']!r}")
    statements = document["Statement"]
    items = statements if isinstance(statements, list) else [statements]
    return [
        _statement(StatementRef(kind, index, j), s, f"{where}.Statement[{j}]")
        for j, s in enumerate(items)
    ]


def _statement(ref: StatementRef, data: object, where: str) -> _Statement:
    if not isinstance(data, dict):
        raise EvaluationError(f"{where}: expected an object")
    unknown = set(data) - _ELEMENTS
    if unknown:
        raise EvaluationError(
            f"{where}: unsupported element(s) {sorted(unknown)} in an identity or session policy"
        )
    if data.get("Effect") not in ("Allow", "Deny"):
        raise EvaluationError(f"{where}.Effect: expected Allow or Deny")
    sid = data.get("Sid")
    actions, not_action = _either(data, "Action", "NotAction", where)
    resources, not_resource = _either(data, "Resource", "NotResource", where)
    conditions = (
        parse_conditions(data["Condition"], f"{where}.Condition") if "Condition" in data else ()
    )
    return _Statement(
        ref=StatementRef(
            ref.kind, ref.policy, ref.statement, sid if isinstance(sid, str) else None
        ),
        allow=data["Effect"] == "Allow",
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        conditions=conditions,
    )


def _either(
    data: Mapping[str, Any], name: str, negated: str, where: str
) -> tuple[tuple[str, ...], bool]:
    if (name in data) == (negated in data):
        raise EvaluationError(f"{where}: give exactly one of {name} or {negated}")
    key = name if name in data else negated
    raw = data[key]
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) for v in values):
        raise EvaluationError(f"{where}.{key}: expected a string or a list of strings")
    if any("${" in v for v in values):
        raise EvaluationError(f"{where}.{key}: policy variables are not supported")
    return tuple(values), key == negated
