"""`BrokerClient`: one method per broker endpoint, typed requests in, validated Structs out.

Every broker call the SDK, the CLI and the test harness make goes through here, over a
`Transport` (which keeps TLS rules, retries and problem-to-error mapping). Method names are
the broker's own handler names, so `broker/routes/` and this file read side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from ._agent_key import AgentKey
from ._messages import (
    ActionProposal,
    AgentToken,
    AuditPage,
    AuditValue,
    Ceremony,
    CeremonyComplete,
    CredentialDocument,
    Delegation,
    DelegationBegin,
    DelegationList,
    DelegationProposal,
    EnrollBegin,
    EnrollComplete,
    Enrolled,
    ExchangeRequest,
    Invite,
    InviteCreated,
    InviteList,
    KeyInfo,
    KeyList,
    LoginBegin,
    ModelList,
    PendingRequest,
    PendingRequests,
    PeoplePage,
    PersonNamed,
    Reinstated,
    RequestCreate,
    RequestCreated,
    RequestDeny,
    RequestStatus,
    RevocationCreate,
    RevocationDone,
    SessionIssued,
    SignedOut,
    UsageReport,
    decode,
    encode,
)
from ._token import issuer_url
from ._transport import Transport, normalize_server

T = TypeVar("T")


class BrokerClient:
    """The broker at `server`, spoken to through `transport`.

    `session` (a person's session token) is the bearer of the calls that act as a person:
    delegations, denials, admin. Without one the broker refuses them (Unauthenticated).
    Agent tokens and poll secrets are arguments of the calls that use them.

    Raises (every method): the broker's problems as their `VouchError` subclasses,
    `NetworkError`, and `InvalidResponse` when a success answer is not the expected shape.
    Constructing one raises `ConfigError` for an unusable server URL.
    """

    def __init__(
        self, server: str, *, session: str | None = None, transport: Transport | None = None
    ) -> None:
        self.server = normalize_server(server)
        self.session = session
        self.transport = transport or Transport()

    def with_session(self, session: str | None) -> BrokerClient:
        """The same broker and transport with another session (None: anonymous)."""
        other = copy.copy(self)
        other.session = session
        return other

    # Sign-in --------------------------------------------------------------------------

    def enroll_begin(self, email: str, code: str | None = None) -> Ceremony:
        """Start registering a key: with an invite `code`, or with `session` to add a key
        (then `approval` says what a registered key of the same person must tap)."""
        body = EnrollBegin(email, code)
        return self._call("POST", "/v1/enroll/begin", Ceremony, body=body, token=self.session)

    def enroll_complete(
        self,
        challenge_id: str,
        credential: Mapping[str, Any],
        approval: Mapping[str, Any] | None = None,
    ) -> Enrolled:
        """Finish registering with the new key's attestation response (fido2's, as JSON)
        and, when adding a key without an invite, the registered key's `approval` tap."""
        body = EnrollComplete(
            challenge_id, dict(credential), dict(approval) if approval is not None else None
        )
        return self._call("POST", "/v1/enroll/complete", Enrolled, body=body)

    def login_begin(self, email: str | None = None) -> Ceremony:
        """Start a login; without `email`, usernameless (a discoverable credential)."""
        return self._call("POST", "/v1/login/begin", Ceremony, body=LoginBegin(email))

    def login_complete(self, challenge_id: str, credential: Mapping[str, Any]) -> SessionIssued:
        """Finish a login with the key's assertion: a session token (not stored here)."""
        body = CeremonyComplete(challenge_id, dict(credential))
        return self._call("POST", "/v1/login/complete", SessionIssued, body=body)

    def logout(self) -> SignedOut:
        """End `session` at the broker: it is refused from now on, on every replica."""
        return self._call("POST", "/v1/logout", SignedOut, token=self.session)

    def list_keys(self) -> list[KeyInfo]:
        """The person's security keys, oldest first, with when and how each was added."""
        return self._call("GET", "/v1/keys", KeyList, token=self.session).keys

    def list_models(self) -> ModelList:
        """What the org policy lets the person (`session`) use themselves and delegate."""
        return self._call("GET", "/v1/models", ModelList, token=self.session)

    def usage(self, *, since: str = "24h", by: str = "delegation") -> UsageReport:
        """The person's (`session`) Bedrock use and cost in the last `since` (24h, 7d),
        theirs and their agents', from the invocation logs (minutes behind the calls).

        Raises:
            Conflict: the broker has no usage source configured.
        """
        query = {"since": since, "by": by}
        return self._call("GET", "/v1/usage", UsageReport, token=self.session, query=query)

    # Delegation (as the person with `session`) ----------------------------------------

    def delegation_begin(
        self,
        *,
        agent: str | None = None,
        models: Sequence[str] = (),
        ttl_s: int | None = None,
        purpose: str | None = None,
        max_sts_s: int | None = None,
        rate: int | None = None,
        request_code: str | None = None,
        bind_key: str | None = None,
        budget: str | None = None,
    ) -> DelegationProposal:
        """A grant the broker would sign, or (`request_code` alone) an agent's request;
        `bind_key` (an agent key's thumbprint) binds the token to that key; `budget`
        ("5.00") caps what it may spend.

        Check it with `verified_grant` before the key signs its options. Unset fields take
        the broker's defaults.
        """
        body = DelegationBegin(
            agent=agent,
            models=list(models),
            ttl_s=ttl_s,
            purpose=purpose,
            max_sts_s=max_sts_s,
            rate=rate,
            request_code=request_code,
            bind_key=bind_key,
            budget=budget,
        )
        return self._call(
            "POST", "/v1/delegations/begin", DelegationProposal, body=body, token=self.session
        )

    def delegation_complete(self, challenge_id: str, credential: Mapping[str, Any]) -> AgentToken:
        """The agent token for the proposal the key's assertion approves.

        For an agent's request the token goes to the polling agent; `request_id` is set.
        """
        body = CeremonyComplete(challenge_id, dict(credential))
        return self._call(
            "POST", "/v1/delegations/complete", AgentToken, body=body, token=self.session
        )

    def list_delegations(self, *, everyone: bool = False) -> list[Delegation]:
        """The person's active delegations; an admin's with `everyone`, everybody's."""
        query = {"all": "true"} if everyone else None
        listed = self._call(
            "GET", "/v1/delegations", DelegationList, query=query, token=self.session
        )
        return listed.delegations

    def revoke_delegation(self, delegation_id: str, *, wait_s: float = 0) -> Delegation:
        """Revoke one delegation (the person's own; an admin's, anyone's); `wait_s`: how long
        the broker may wait for AWS to deny its live sessions (`aws_sessions` "cut")."""
        path = f"/v1/delegations/{_segment(delegation_id)}"
        query = {"wait_s": f"{wait_s:g}"} if wait_s else None
        return self._call("DELETE", path, Delegation, token=self.session, query=query)

    # Agent requests --------------------------------------------------------------------

    def create_request(
        self,
        *,
        email: str,
        agent: str,
        models: Sequence[str],
        ttl_s: int,
        message: str = "",
        jwk: Mapping[str, str] | None = None,
        budget: str | None = None,
    ) -> RequestCreated:
        """An agent asks `email` for a delegation (no bearer: the agent has nothing yet);
        with its public `jwk`, the token will be bound to that key; `budget` ("5.00")
        asks for a cap on what it may spend."""
        body = RequestCreate(
            email, agent, list(models), ttl_s, message, dict(jwk) if jwk else None, budget
        )
        return self._call("POST", "/v1/delegation-requests", RequestCreated, body=body)

    def list_requests(self) -> list[PendingRequest]:
        """The person's (`session`) agent requests waiting for an answer, oldest first."""
        listed = self._call("GET", "/v1/delegation-requests", PendingRequests, token=self.session)
        return listed.requests

    def poll_request(self, request_id: str, poll_secret: str) -> RequestStatus:
        """The request's status, read with its poll secret as bearer."""
        path = f"/v1/delegation-requests/{_segment(request_id)}"
        return self._call("GET", path, RequestStatus, token=poll_secret)

    def deny_request(self, user_code: str) -> RequestStatus:
        """The person (`session`) refuses an agent's request."""
        body = RequestDeny(user_code)
        return self._call(
            "POST", "/v1/delegation-requests/deny", RequestStatus, body=body, token=self.session
        )

    # Exchange ---------------------------------------------------------------------------

    def exchange_aws(
        self,
        agent_token: str,
        *,
        models: Sequence[str] | None = None,
        duration_s: int | None = None,
        key: AgentKey | None = None,
    ) -> CredentialDocument:
        """AWS credentials for an agent token, optionally narrowed (idempotent: retried);
        with the agent's `key`, each attempt carries a fresh DPoP proof (a bound token)."""
        narrowed = ExchangeRequest(list(models) if models else None, duration_s)
        body = narrowed if narrowed != ExchangeRequest() else None
        path = "/v1/credentials/aws"
        # The broker expects the proof's htu at its public URL (the token's issuer), which an
        # agent reaching it at an internal address or through a proxy does not call.
        public = issuer_url(agent_token, path)
        return self._call(
            "POST",
            path,
            CredentialDocument,
            body=body,
            token=agent_token,
            retry=True,
            proof=(lambda method, url: key.proof(method, public or url, agent_token))
            if key
            else None,
        )

    def own_credentials_aws(
        self, *, models: Sequence[str] | None = None, duration_s: int | None = None
    ) -> CredentialDocument:
        """The person's (`session`) own AWS credentials: every model the org policy lets
        them use themselves, or the `models` named (idempotent: retried)."""
        narrowed = ExchangeRequest(list(models) if models else None, duration_s)
        body = narrowed if narrowed != ExchangeRequest() else None
        return self._call(
            "POST",
            "/v1/credentials/aws/self",
            CredentialDocument,
            body=body,
            token=self.session,
            retry=True,
        )

    # Admin (as an admin's `session`) ------------------------------------------------

    def invite_begin(self, email: str) -> ActionProposal:
        """Propose an invite for `email`; check it with `verified_action`, then tap."""
        return self._call(
            "POST",
            "/v1/admin/invites/begin",
            ActionProposal,
            body=PersonNamed(email),
            token=self.session,
        )

    def invite_complete(self, challenge_id: str, credential: Mapping[str, Any]) -> InviteCreated:
        """The one-time enrollment code the admin's tap approved (shown once)."""
        body = CeremonyComplete(challenge_id, dict(credential))
        return self._call(
            "POST", "/v1/admin/invites/complete", InviteCreated, body=body, token=self.session
        )

    def list_invites(self) -> list[Invite]:
        """Unused invites, soonest to expire first (never their codes)."""
        return self._call("GET", "/v1/admin/invites", InviteList, token=self.session).invites

    def people_page(self, *, limit: int | None = None, after: str | None = None) -> PeoplePage:
        """One page of registered people by email, and the `after` of the next (`next`)."""
        given = {"limit": limit, "after": after}
        query: dict[str, str | int] = {k: v for k, v in given.items() if v is not None}
        return self._call(
            "GET", "/v1/admin/people", PeoplePage, query=query or None, token=self.session
        )

    def cancel_invite(self, invite_id: str) -> Invite:
        """Cancel an unused invite by its id (`inv_...`)."""
        path = f"/v1/admin/invites/{_segment(invite_id)}"
        return self._call("DELETE", path, Invite, token=self.session)

    def reinstate_begin(self, email: str) -> ActionProposal:
        """Propose reinstating a revoked person; check with `verified_action`, then tap."""
        return self._call(
            "POST",
            "/v1/admin/reinstatements/begin",
            ActionProposal,
            body=PersonNamed(email),
            token=self.session,
        )

    def reinstate_complete(self, challenge_id: str, credential: Mapping[str, Any]) -> Reinstated:
        """Reinstate the person the admin's tap approved."""
        body = CeremonyComplete(challenge_id, dict(credential))
        return self._call(
            "POST", "/v1/admin/reinstatements/complete", Reinstated, body=body, token=self.session
        )

    def create_revocation(
        self,
        *,
        delegation: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        credential: str | None = None,
        reason: str | None = None,
        wait_s: float = 0,
    ) -> RevocationDone:
        """Revoke by exactly one handle; enforced from the next request on every replica.
        `wait_s`: how long the broker may wait for AWS to deny the live sessions."""
        body = RevocationCreate(delegation, agent, user, credential, reason, wait_s or None)
        return self._call(
            "POST", "/v1/admin/revocations", RevocationDone, body=body, token=self.session
        )

    def read_audit(
        self,
        *,
        limit: int | None = None,
        before: str | None = None,
        since: float | None = None,
        person: str | None = None,
        agent: str | None = None,
    ) -> list[dict[str, AuditValue]]:
        """Audit events, newest first: at most `limit`, from stream id `before` back."""
        return self.audit_page(
            limit=limit, before=before, since=since, person=person, agent=agent
        ).events

    def audit_page(
        self,
        *,
        limit: int | None = None,
        before: str | None = None,
        since: float | None = None,
        person: str | None = None,
        agent: str | None = None,
    ) -> AuditPage:
        """One page of audit events, newest first, and the `before` of the next (`next`).

        `since` (Unix time), `person` (an email) and `agent` (a sub or a name) filter; a
        filtered page may hold fewer than `limit` events while `next` is not None."""
        given = {"limit": limit, "before": before, "since": since, "person": person}
        query: dict[str, str | int] = {
            name: f"{value:.3f}" if isinstance(value, float) else value
            for name, value in {**given, "agent": agent}.items()
            if value is not None
        }
        return self._call(
            "GET", "/v1/admin/audit", AuditPage, query=query or None, token=self.session
        )

    # -----------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        reply: type[T],
        *,
        body: msgspec.Struct | None = None,
        token: str | None = None,
        query: Mapping[str, str | int] | None = None,
        retry: bool | None = None,
        proof: Callable[[str, str], str] | None = None,
    ) -> T:
        """One request through the transport, its answer decoded as `reply`."""
        answer = self.transport.request(
            method,
            f"{self.server}{path}",
            token=token,
            body=encode(body) if body is not None else None,
            query=query,
            retry=retry,
            **({"proof": proof} if proof is not None else {}),
        )
        return decode(answer, reply, f"{method} {path}")


def _segment(value: str) -> str:
    # An id from a person or a broker must stay one path segment ("../admin" must not climb).
    return quote(value, safe="")
