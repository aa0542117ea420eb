"""Identities at the broker's doors: the rules of `policies.identity`, refused as problems.

A malformed email or agent sub in a request is the caller's input error (400
invalid-request); a malformed agent name in a grant is a grant error (400 grant-invalid).
"""

from __future__ import annotations

from broker.errors import GrantInvalid, InvalidRequest, from_policy
from policies import identity
from policies.errors import PoliciesError


def person_email(value: str) -> str:
    """The normal form of a person's email.

    Raises:
        InvalidRequest: not a usable address.
    """
    try:
        return identity.normalize_email(value)
    except PoliciesError as exc:
        raise from_policy(exc, invalid=InvalidRequest) from None


def grant_agent(name: str) -> str:
    """An agent name as a grant names it.

    Raises:
        GrantInvalid: not `[a-z0-9][a-z0-9-]{0,31}`.
    """
    try:
        return identity.check_agent_name(name)
    except PoliciesError as exc:
        raise from_policy(exc, invalid=GrantInvalid) from None


def agent_handle(value: str) -> str:
    """The one spelling of an agent sub, `agent.<name>.<email>` with the email normalised,
    so a revocation can only name an agent that could exist, and names it as its tokens do.

    Raises:
        InvalidRequest: not an agent sub.
    """
    try:
        return identity.agent_sub(*identity.parse_agent_sub(value))
    except PoliciesError as exc:
        raise from_policy(exc, invalid=InvalidRequest) from None


def limit_identity(email: str | None) -> str | None:
    """The identity a per-email rate limit counts: the email's normal form, so that every
    spelling of one person shares one budget; a value that is no email counts as given (the
    request is refused anyway, after it was counted)."""
    if not email:
        return None
    try:
        return identity.normalize_email(email)
    except PoliciesError:
        return email
