"""The policies package's one error tree; every error carries its data and a stable `code`.

    PoliciesError                   policies-error
    ├── CatalogError                catalog-error
    │   ├── UnknownModel            unknown-model             .name .suggestions
    │   └── ModelNotCallable        model-not-callable        .model_id .region .hints
    ├── PolicyFileError             policy-file-invalid       .path .problems
    ├── InvalidGrant                invalid-grant             .field
    ├── GrantDenied                 grant-denied              .check .reason .model .limit
    ├── SessionPolicyError          session-policy-invalid
    │   └── SessionPolicyTooLarge   session-policy-too-large  .size .limit .suggestion
    ├── EvaluationError             policy-evaluation-error
    └── InvalidRecord               invalid-invocation-record .reason

`InvalidGrant`, `UnknownModel` and `ModelNotCallable` describe a malformed request (a 4xx
the caller can fix); `GrantDenied` is the org policy saying no. `code` is the slug the
broker puts in its problem type, so it never changes once released.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PoliciesError(Exception):
    """Base of every error the policies package raises on purpose."""

    code: str = "policies-error"


class CatalogError(PoliciesError):
    """A model name or catalog entry cannot be used."""

    code: str = "catalog-error"


class UnknownModel(CatalogError):
    """A name that is no catalog id, inference-profile id, ARN or alias."""

    code: str = "unknown-model"

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = f" (did you mean {', '.join(self.suggestions)}?)" if self.suggestions else ""
        super().__init__(f'unknown model "{name}"{hint}')


class ModelNotCallable(CatalogError):
    """A known model that cannot be invoked this way from this region."""

    code: str = "model-not-callable"

    def __init__(self, model_id: str, region: str, reason: str, hints: Sequence[str] = ()) -> None:
        self.model_id = model_id
        self.region = region
        self.hints = tuple(hints)
        hint = f"; use one of: {', '.join(self.hints)}" if self.hints else ""
        super().__init__(f"{model_id} {reason}{hint}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a policy or catalog file, with where it is."""

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.location else self.file
        return f"{where}: {self.message}"


class PolicyFileError(PoliciesError):
    """A catalog or org-policy file with problems; all of them, each with its location."""

    code: str = "policy-file-invalid"

    def __init__(self, path: str, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: {count} problem{'s' * (count != 1)}:\n{lines}")


class InvalidGrant(PoliciesError):
    """A grant request that is malformed whatever the policy says (bad agent name, email...)."""

    code: str = "invalid-grant"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class GrantDenied(PoliciesError):
    """The org policy does not let this person delegate this.

    `check` names what failed: person-not-allowed, model-not-allowed, ttl-exceeded,
    key-binding-required, budget-required or budget-over-max;
    `model` and `limit` (seconds) say which model and which limit where one applies.
    """

    code: str = "grant-denied"

    def __init__(
        self, check: str, reason: str, *, model: str | None = None, limit: int | None = None
    ) -> None:
        self.check = check
        self.reason = reason
        self.model = model
        self.limit = limit
        super().__init__(reason)


class SessionPolicyError(PoliciesError):
    """A session or role policy that cannot be compiled into something STS accepts."""

    code: str = "session-policy-invalid"


class SessionPolicyTooLarge(SessionPolicyError):
    """The compiled policy is over the size AWS accepts; raised before anything is sent."""

    code: str = "session-policy-too-large"

    def __init__(self, size: int, limit: int, suggestion: str) -> None:
        self.size = size
        self.limit = limit
        self.suggestion = suggestion
        super().__init__(f"policy is {size} characters, over the {limit} limit; {suggestion}")


class EvaluationError(PoliciesError):
    """A policy or request the evaluator cannot judge exactly, so it refuses to guess."""

    code: str = "policy-evaluation-error"


class InvalidRecord(PoliciesError):
    """A line that is not a Bedrock model invocation log record (the reason says why)."""

    code: str = "invalid-invocation-record"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
