"""The broker's requests and replies as msgspec Structs: the SDK's one copy of its JSON shapes.

Replies are checked on arrival (`decode`): a missing field or a wrong type is an
`InvalidResponse`, never a KeyError later. Members this SDK does not know are ignored, so a
newer broker may add some. WebAuthn options and the key's responses stay JSON objects: fido2
reads them, this SDK does not (`verified_grant` only reads the challenge).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from ._errors import InvalidResponse
from ._secrets import masked_repr

T = TypeVar("T")


def decode(answer: object, kind: type[T], what: str) -> T:
    """`answer` (parsed JSON) as a `kind`.

    Raises:
        InvalidResponse: it is not one; the message names `what` and the offending field.
    """
    try:
        return msgspec.convert(answer, kind)
    except msgspec.ValidationError as exc:
        raise InvalidResponse(f"the broker's answer to {what} is malformed: {exc}") from None


def encode(body: msgspec.Struct) -> dict[str, object]:
    """A request Struct as the JSON object the transport sends."""
    encoded: dict[str, object] = msgspec.to_builtins(body)
    return encoded


# Requests ---------------------------------------------------------------------------------


class EnrollBegin(msgspec.Struct, omit_defaults=True):
    email: str
    code: str | None = None

    __repr__ = masked_repr("code")


class LoginBegin(msgspec.Struct):
    email: str | None = None  # None: usernameless, with a discoverable credential


class CeremonyComplete(msgspec.Struct):
    """The second step of every ceremony: the key's response to the first step's options."""

    challenge_id: str
    credential: dict[str, Any]  # fido2's response, as JSON


class EnrollComplete(msgspec.Struct, omit_defaults=True):
    """The new key's attestation, and an existing key's tap when the begin step asked one."""

    challenge_id: str
    credential: dict[str, Any]
    approval: dict[str, Any] | None = None


class DelegationBegin(msgspec.Struct, omit_defaults=True):
    """A grant to propose, or (`request_code` alone) an agent's request to approve."""

    agent: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    ttl_s: int | None = None
    purpose: str | None = None
    max_sts_s: int | None = None
    rate: int | None = None
    request_code: str | None = None
    bind_key: str | None = None
    """The agent key's thumbprint: the token is bound to it (DPoP)."""
    budget: str | None = None
    """The most the delegation may spend ("5.00")."""


class RequestCreate(msgspec.Struct, omit_defaults=True):
    email: str
    agent: str
    models: list[str]
    ttl_s: int
    message: str = ""
    jwk: dict[str, str] | None = None
    """The agent's public key: the token will be bound to it (DPoP)."""
    budget: str | None = None
    """The most the delegation may spend ("5.00")."""


class RequestDeny(msgspec.Struct):
    user_code: str


class ExchangeRequest(msgspec.Struct, omit_defaults=True):
    models: list[str] | None = None
    duration_s: int | None = None


class PersonNamed(msgspec.Struct):
    """The person an admin action concerns (an invite, a reinstatement)."""

    email: str


class RevocationCreate(msgspec.Struct, omit_defaults=True):
    """Exactly one handle (the broker refuses anything else) and an optional reason."""

    delegation: str | None = None
    agent: str | None = None
    user: str | None = None
    credential: str | None = None
    reason: str | None = None
    wait_s: float | None = None


# Replies ----------------------------------------------------------------------------------


class WebAuthnOptions(msgspec.Struct):
    """A begin step's options; `public_key` goes to fido2 as it is."""

    public_key: dict[str, Any] = msgspec.field(name="publicKey")


class Action(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A power-raising action a tap approves: who (`by`) does what concerning whom."""

    action: str  # add-key | invite | reinstate
    by: str
    email: str
    enrollment: str | None = None  # add-key: the new key's registration challenge


class ActionApproval(msgspec.Struct):
    """What an existing key must tap; the challenge in `options` commits to
    `action_canonical` (check it with `verified_action`)."""

    action: Action
    action_canonical: str
    options: WebAuthnOptions


class Ceremony(msgspec.Struct):
    """The first step of enrollment or login; `approval` when adding a key without an
    invite (a registered key of the same person taps it)."""

    challenge_id: str
    options: WebAuthnOptions
    approval: ActionApproval | None = None


class ActionProposal(msgspec.Struct):
    """An admin action's first step (invite, reinstate): tap `options` to do it."""

    challenge_id: str
    action: Action
    action_canonical: str
    options: WebAuthnOptions


class Enrolled(msgspec.Struct):
    email: str
    credential: str  # the key's id at the broker (a hash), for revocation
    via: str = ""  # what authorized it: "invite", or "key" (a tap by another key)


class SignedOut(msgspec.Struct):
    email: str
    signed_out_at: float


class KeyInfo(msgspec.Struct, kw_only=True):
    """One of the person's security keys, as the broker registered it."""

    cid: str
    state: str  # active | flagged | revoked
    added_at: int
    last_used: int | None = None
    via: str = ""
    invite: str | None = None
    approved_by: str | None = None
    aaguid: str = ""
    software: bool = False


class KeyList(msgspec.Struct):
    keys: list[KeyInfo]


class ModelInfo(msgspec.Struct, kw_only=True):
    """A model the person may use themselves, delegate, or both, with the limit of each."""

    id: str
    name: str
    use: bool
    delegate: bool
    use_max_duration_s: int | None = None
    delegate_max_ttl_s: int | None = None


class ModelList(msgspec.Struct, kw_only=True):
    email: str
    region: str
    models: list[ModelInfo]


class UsageRow(msgspec.Struct, kw_only=True):
    """One group's Bedrock use: tokens, and the exact cost of the priced records."""

    person: str | None = None
    agent: str | None = None
    """The agent's name; "" for the person's own use."""
    delegation: str | None = None
    """The delegation id; "" for the person's own use."""
    model: str | None = None
    foreign: bool = False
    records: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = Decimal(0)
    """Exact, in the report's currency (a decimal string on the wire)."""
    unpriced_records: int = 0
    """Records whose cost is unknown (not in `cost`)."""


class UsageReport(msgspec.Struct, kw_only=True):
    """`GET /v1/usage`: Bedrock use from the model invocation logs, grouped `by`."""

    by: str
    since: datetime
    until: datetime
    currency: str
    rows: list[UsageRow]
    total: UsageRow
    unpriced_models: list[str] = msgspec.field(default_factory=list)
    duplicates: int = 0
    invalid: int = 0
    email: str | None = None


class SessionIssued(msgspec.Struct):
    token: str
    token_type: str
    expires_at: int
    email: str

    __repr__ = masked_repr("token")


class Grant(msgspec.Struct, kw_only=True):
    """Who delegates which models to which agent, for how long, within which limits."""

    email: str
    agent: str
    models: list[str]
    ttl_s: int
    purpose: str = ""
    max_sts_s: int | None = None
    rate: int | None = None
    jkt: str | None = None
    """The thumbprint of the agent key the token is bound to (None: a bearer token)."""
    budget: str | None = None
    """The most the delegation may spend ("5.00", the price table's currency)."""


class DelegationProposal(msgspec.Struct):
    """The grant a tap would approve; the challenge in `options` commits to `grant_canonical`."""

    challenge_id: str
    grant: Grant
    grant_canonical: str
    options: WebAuthnOptions


class Delegation(msgspec.Struct, kw_only=True):
    """The broker's record of a delegation (never its token)."""

    id: str
    email: str
    agent: str
    sub: str
    models: list[str]
    cid: str
    created_at: int
    expires_at: int
    purpose: str = ""
    max_sts_s: int | None = None
    rate: int | None = None
    revoked_at: int | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    jkt: str | None = None
    budget: str | None = None
    """The most it may spend (decimal text); None: no budget."""
    spent: str | None = None
    """In a list, for a delegation with a budget: what it has spent so far (decimal text)."""
    state: str | None = None
    """In a list: "active" or "revoked" (by the delegation, its agent, person or key)."""
    revoked_handle: str | None = None
    """In a list: what was revoked: "delegation", "agent", "user" or "credential"."""
    aws_sessions: str | None = None
    """On a revocation's answer: "cut" once AWS denies its live sessions, else "pending"
    (or "disabled": the broker has no AWS credentials of its own)."""


class AgentToken(msgspec.Struct):
    """A completed delegation: the token, or for an agent's request the request it answers."""

    delegation: Delegation
    token: str | None = None
    request_id: str | None = None

    __repr__ = masked_repr("token")


class DelegationList(msgspec.Struct):
    delegations: list[Delegation]


class RequestCreated(msgspec.Struct):
    request_id: str
    user_code: str  # for the person: `vouch delegate approve CODE`
    poll_secret: str  # for the agent only: the bearer of its polls
    expires_at: int
    interval: float = 2.0
    verification_uri_complete: str | None = None  # the approval page: `/approve/CODE`

    __repr__ = masked_repr("poll_secret")


class RequestStatus(msgspec.Struct):
    """pending | approved (with the token, once) | delivered | denied | expired."""

    status: str
    interval: float | None = None
    token: str | None = None
    delegation_id: str | None = None

    __repr__ = masked_repr("token")


class PendingRequest(msgspec.Struct, omit_defaults=True):
    """An agent's request waiting for the person. `agent` and `message` are the asker's own
    words and `address` is where the broker saw the request come from: untrusted text."""

    user_code: str
    agent: str
    models: list[str]
    ttl_s: int
    message: str
    address: str
    created_at: int
    expires_at: int
    jkt: str | None = None
    """The thumbprint of the key the agent's token will be bound to (None: unbound)."""
    budget: str | None = None
    """The budget the agent asked for ("5.00"); None: none."""


class PendingRequests(msgspec.Struct):
    requests: list[PendingRequest]


class CredentialDocument(msgspec.Struct, rename="pascal"):
    """The exchange's answer, AWS's `credential_process` document (Version 1)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    __repr__ = masked_repr("secret_access_key", "session_token")


class InviteCreated(msgspec.Struct):
    id: str
    email: str
    code: str  # shown once: the broker keeps only a hash
    expires_in: int
    expires_at: int

    __repr__ = masked_repr("code")


class Invite(msgspec.Struct):
    """An unused invite as admins list it (never its code)."""

    id: str
    email: str
    created_by: str
    created_at: int
    expires_at: int
    in_use: bool = False  # an enrollment that began with the code holds it


class InviteList(msgspec.Struct):
    invites: list[Invite]


class PersonInfo(msgspec.Struct):
    """A registered person as admins list them."""

    email: str
    state: str
    """`active` or `revoked`."""
    since: int
    """Revoked: when. Active: when their first key was registered (0: never)."""
    keys: dict[str, int]
    """How many of their keys are in each state (active, flagged, revoked)."""


class PeoplePage(msgspec.Struct):
    people: list[PersonInfo]
    """By email."""
    next: str | None = None
    """The `after` of the following page; None: no more."""


class Reinstated(msgspec.Struct):
    email: str
    reinstated_at: float

    __repr__ = masked_repr("code")


class RevocationDone(msgspec.Struct):
    handle: str
    value: str
    revoked_at: float
    aws_sessions: str | None = None
    """"cut" once AWS denies the sessions it names, "pending" until then, "disabled" without."""
    already_revoked: bool = False
    """It was revoked before: nothing changed, and `revoked_at` is when it was."""


AuditValue = str | int | float | bool | list[str]
"""What an audit field holds: text, a number (`ts`, `expires_at`, ...), a flag, a list."""


class AuditPage(msgspec.Struct):
    events: list[dict[str, AuditValue]]
    """Newest first."""
    next: str | None = None
    """The `before` of the following page; None: nothing older matches."""
