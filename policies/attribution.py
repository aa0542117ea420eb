"""Who made a Bedrock call: STS session names the broker gives, and the way back from an ARN.

Every broker-issued session is `arn:aws:sts::<account>:assumed-role/<role>/<session name>`
in CloudTrail, in Bedrock's model invocation logs and in billing. The session name says,
readably and within STS's 64 characters of `[\\w+=,.@-]`:

- an agent's session: `<delegation id>.<agent>.<email>`, e.g.
  `dlg_3kq0b4Y2m9T1xVwA.researcher.alice@example.com`. The delegation id (`dlg_` and 16
  base64url characters) tells two delegations of one agent apart; the agents role says it
  is an agent, so the sub's `agent.` prefix is left out to leave room for the email.
- a person's own session: `user.<email>` (human access, no delegation).

A name that would be longer keeps its start (the delegation id and the agent name always
fit whole: 20 + 1 + 32 + 1 characters) and ends with `,` and 8 hex digits of the SHA-256 of
the email: a sub never contains a `,`, so a shortened name is never read as a full one, and
the digest lets anyone holding a candidate email check it without the broker's state.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

import msgspec

MAX_SESSION_NAME: Final = 64
DELEGATION_ID: Final = r"dlg_[A-Za-z0-9_-]{16}"
PERSON_PREFIX: Final = "user."
_DIGEST_LEN: Final = 8
_AGENT_NAME = re.compile(
    rf"(?P<dlg>{DELEGATION_ID})\.(?P<agent>[a-z0-9][a-z0-9-]{{0,31}})\.(?P<rest>[^,]+)"
    r"(?:,(?P<digest>[0-9a-f]{8}))?"
)
_PERSON_NAME = re.compile(r"user\.(?P<rest>[^,]+)(?:,(?P<digest>[0-9a-f]{8}))?")
_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sts::(?P<account>[0-9]{12}):"
    r"assumed-role/(?P<role>[\w+=,.@-]{1,64})/(?P<session>[\w+=,.@-]{2,64})"
)

Kind = Literal["agent", "person", "foreign"]


def email_digest(email: str) -> str:
    """The 8 hex digits a shortened session name ends with."""
    return hashlib.sha256(email.encode()).hexdigest()[:_DIGEST_LEN]


def _fit(head: str, email: str) -> str:
    """`head` + email, or head + as much of the email as fits + `,` + its digest."""
    if len(head) + len(email) <= MAX_SESSION_NAME:
        return head + email
    room = MAX_SESSION_NAME - len(head) - 1 - _DIGEST_LEN
    return f"{head}{email[:room]},{email_digest(email)}"


def agent_session_name(delegation_id: str, agent: str, email: str) -> str:
    """The RoleSessionName of an agent's session under a delegation."""
    return _fit(f"{delegation_id}.{agent}.", email)


def person_session_name(email: str) -> str:
    """The RoleSessionName of a person's own session."""
    return _fit(PERSON_PREFIX, email)


class BrokerRoles(msgspec.Struct, frozen=True, kw_only=True):
    """The roles the broker issues sessions of (from the org policy's [aws] table)."""

    account_id: str
    agents_role: str
    """The agents role's name (the last element of its ARN)."""
    people_role: str | None = None


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """Who a record's `identity.arn` names.

    A foreign ARN (not an assumed-role session of the broker's roles in its account, or a
    session name the broker does not give) has only `arn` set, besides `role` when it is an
    assumed role.
    """

    kind: Kind
    arn: str
    role: str | None = None
    delegation: str | None = None
    agent: str | None = None
    email: str | None = None
    """The person's email when the name holds it whole (None when shortened)."""
    email_start: str | None = None
    """A shortened name's first part of the email."""
    email_digest: str | None = None
    """A shortened name's digest of the email (`email_digest`)."""

    @property
    def shortened(self) -> bool:
        """The name holds only part of the email."""
        return self.email_digest is not None

    @property
    def person(self) -> str:
        """The email, or `<start>...,<digest>` for a shortened name; "" for a foreign ARN."""
        if self.email is not None:
            return self.email
        if self.email_digest is not None:
            return f"{self.email_start}...,{self.email_digest}"
        return ""

    def is_of(self, email: str) -> bool:
        """Whether this session is the person's with this (normalised) email, or one of
        their agents': the whole email, or a shortened name's start and digest."""
        if self.kind == "foreign":
            return False
        if self.email is not None:
            return self.email == email
        return (
            self.email_start is not None
            and email.startswith(self.email_start)
            and email_digest(email) == self.email_digest
        )

    def with_email(self, email: str) -> Attribution:
        """This attribution with its email known (checked with `is_of` by the caller)."""
        return msgspec.structs.replace(self, email=email, email_start=None, email_digest=None)


def attribute(arn: str, roles: BrokerRoles) -> Attribution:
    """Who an `identity.arn` names: an agent's session (its delegation, agent and person), a
    person's own session, or something foreign to the broker (never an error)."""
    match = _ASSUMED_ROLE.fullmatch(arn)
    if match is None:
        return Attribution(kind="foreign", arn=arn)
    role, session = match["role"], match["session"]
    found: Attribution | None = None
    if match["account"] == roles.account_id:
        if role == roles.agents_role:
            found = _agent_session(arn, role, session)
        elif role == roles.people_role:
            found = _person_session(arn, role, session)
    return found or Attribution(kind="foreign", arn=arn, role=role)


def _agent_session(arn: str, role: str, session: str) -> Attribution | None:
    found = _AGENT_NAME.fullmatch(session)
    if found is None:
        return None
    base = Attribution(
        kind="agent", arn=arn, role=role, delegation=found["dlg"], agent=found["agent"]
    )
    return _with_email(base, found["rest"], found["digest"])


def _person_session(arn: str, role: str, session: str) -> Attribution | None:
    found = _PERSON_NAME.fullmatch(session)
    if found is None:
        return None
    return _with_email(
        Attribution(kind="person", arn=arn, role=role), found["rest"], found["digest"]
    )


def _with_email(base: Attribution, rest: str, digest: str | None) -> Attribution | None:
    if digest is not None:
        return msgspec.structs.replace(base, email_start=rest, email_digest=digest)
    if "@" not in rest:  # not a name the broker gives
        return None
    return msgspec.structs.replace(base, email=rest)
