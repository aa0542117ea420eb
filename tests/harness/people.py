"""A person with a software security key, talking to a test broker over real HTTP.

Every flow goes through the SDK's `BrokerClient` (typed, validated answers; the broker's
problems raise as `VouchError` subclasses) and python-fido2's real client over the
software authenticator. `post` and `http` stay for tests that send raw or hostile HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions
from vouch_delegate import BrokerClient
from vouch_delegate._action import verified_action
from vouch_delegate._grant import verified_grant
from vouch_delegate._messages import (
    AgentToken,
    Delegation,
    DelegationProposal,
    InviteCreated,
    Reinstated,
    WebAuthnOptions,
)
from vouch_delegate.authenticators import DEFAULT_PIN, SoftwareAuthenticator, make_client

from tests.harness.broker import BrokerServer, make_invite

Options = WebAuthnOptions | Mapping[str, Any]


def to_json(obj: Any) -> Any:
    """A fido2 response object as plain JSON data (bytes already base64url)."""
    return json.loads(json.dumps(dict(obj), default=dict))


def public_key_of(options: Options) -> Mapping[str, Any]:
    """The `publicKey` options, from a typed ceremony or a raw JSON answer."""
    return options.public_key if isinstance(options, WebAuthnOptions) else options["publicKey"]


class Human:
    """Enrolls, logs in, delegates and approves with a software authenticator."""

    def __init__(
        self,
        base_url: str,
        origin: str,
        email: str,
        key_file: Path,
        *,
        pin: str = DEFAULT_PIN,
        device: SoftwareAuthenticator | None = None,
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)  # raw HTTP, for attack tests
        self.broker = BrokerClient(base_url)
        self.origin = origin
        self.email = email
        self.pin = pin
        self.device = device or SoftwareAuthenticator(key_file)
        self.credential_ids: list[str] = []
        """The raw ids (base64url) of the keys this person registered, as the key sent them."""

    @property
    def session(self) -> str | None:
        """The session token from the last login (the broker client's bearer)."""
        return self.broker.session

    @session.setter
    def session(self, token: str | None) -> None:
        self.broker.session = token

    def client(self) -> Any:
        return make_client(self.device, self.origin, pin=lambda: self.pin, on_prompt=lambda _: None)

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        """Raw HTTP: no checks on the way in or out."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(path, json=body, headers=headers)

    def register(self, options: Options) -> Any:
        opts = PublicKeyCredentialCreationOptions.from_dict(public_key_of(options))
        return to_json(self.client().make_credential(opts))

    def sign_assertion(self, options: Options, *, any_key: bool = False) -> Any:
        """The key's assertion; `any_key` ignores the allow-list and signs with whatever
        discoverable credential the key holds for this RP, as a hostile client would."""
        public_key = dict(public_key_of(options))
        if any_key:
            public_key["allowCredentials"] = []
        opts = PublicKeyCredentialRequestOptions.from_dict(public_key)
        return to_json(self.client().get_assertion(opts).get_response(0))

    def begin_enrollment(
        self, code: str | None = None, *, token: str | None = None
    ) -> httpx.Response:
        """Raw `POST /v1/enroll/begin` with an invite code, or a session to add a key."""
        body: dict[str, Any] = {"email": self.email}
        if code is not None:
            body["code"] = code
        return self.post("/v1/enroll/begin", body, token)

    def finish_enrollment(
        self, ceremony: dict[str, Any], *, approver: Human | None = None
    ) -> httpx.Response:
        """Raw: register this key; `approver` taps the approval the broker asks for, if any
        (with whatever key it holds, as a hostile client would)."""
        credential = self.register(ceremony["options"])
        self.credential_ids.append(str(credential["rawId"]))
        body: dict[str, Any] = {"challenge_id": ceremony["challenge_id"], "credential": credential}
        if ceremony.get("approval") and approver is not None:
            body["approval"] = approver.sign_assertion(
                ceremony["approval"]["options"], any_key=True
            )
        return self.post("/v1/enroll/complete", body)

    def enroll(
        self, code: str | None = None, *, token: str | None = None, approver: Human | None = None
    ) -> str:
        """Register this key: its cid. With an invite code, or with a `token` (a session of
        the same person) and the `approver` whose registered key taps the approval, checked
        as the CLI checks it (`verified_action`)."""
        broker = self.broker.with_session(token)
        ceremony = broker.enroll_begin(self.email, code)
        credential = self.register(ceremony.options)
        self.credential_ids.append(str(credential["rawId"]))
        approval = None
        if ceremony.approval is not None and approver is not None:
            verified_action(
                ceremony.approval,
                action="add-key",
                email=self.email,
                enrollment=ceremony.options.public_key["challenge"],
            )
            approval = approver.sign_assertion(ceremony.approval.options)
        done = broker.enroll_complete(ceremony.challenge_id, credential, approval)
        return done.credential

    def login(self, *, email: str | None = "") -> str:
        """A key tap for a session token (kept as `session`); `email=None`: usernameless."""
        ceremony = self.broker.login_begin(self.email if email == "" else email)
        done = self.broker.login_complete(
            ceremony.challenge_id, self.sign_assertion(ceremony.options)
        )
        self.session = done.token
        return done.token

    def delegate(
        self, agent: str, models: list[str], ttl_s: int = 7200, **extra: Any
    ) -> AgentToken:
        """A key tap over the grant (checked as the CLI checks it): the agent token."""
        proposal = self.broker.delegation_begin(agent=agent, models=models, ttl_s=ttl_s, **extra)
        return self.sign(proposal)

    def approve(self, user_code: str) -> tuple[DelegationProposal, AgentToken]:
        """Approve an agent's request: the proposal shown and the completed delegation."""
        proposal = self.broker.delegation_begin(request_code=user_code)
        return proposal, self.sign(proposal)

    def sign(self, proposal: DelegationProposal) -> AgentToken:
        """Tap for a proposal, refusing (GrantMismatch) one whose challenge is not its grant."""
        verified_grant(proposal)
        credential = self.sign_assertion(proposal.options)
        return self.broker.delegation_complete(proposal.challenge_id, credential)

    def revoke(self, delegation_id: str) -> Delegation:
        """Revoke one of this person's delegations: the record, revoked."""
        return self.broker.revoke_delegation(delegation_id)

    def tapped(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Raw: `<path>/begin` with the session, then this key's tap over the action's
        challenge at `<path>/complete`."""
        begin = self.post(f"{path}/begin", body, self.session)
        begin.raise_for_status()
        proposal = begin.json()
        return self.post(
            f"{path}/complete",
            {
                "challenge_id": proposal["challenge_id"],
                "credential": self.sign_assertion(proposal["options"]),
            },
            self.session,
        )

    def invite(self, email: str) -> InviteCreated:
        """An admin's invite for `email`: a tap bound to it (checked as the CLI checks it)."""
        proposal = self.broker.invite_begin(email)
        verified_action(proposal, action="invite", by=self.email)
        credential = self.sign_assertion(proposal.options)
        return self.broker.invite_complete(proposal.challenge_id, credential)

    def reinstate(self, email: str) -> Reinstated:
        """An admin's reinstatement of a revoked person: a tap bound to it."""
        proposal = self.broker.reinstate_begin(email)
        verified_action(proposal, action="reinstate", by=self.email)
        credential = self.sign_assertion(proposal.options)
        return self.broker.reinstate_complete(proposal.challenge_id, credential)


def person_at(server: BrokerServer, email: str, key_file: Path) -> Human:
    """A person with a fresh software key, talking to `server` (origin = its issuer)."""
    return Human(f"http://127.0.0.1:{server.port}", server.url, email, key_file)


def signed_in(server: BrokerServer, email: str, key_file: Path) -> Human:
    """`person_at`, enrolled with a server-side invite and logged in."""
    human = person_at(server, email, key_file)
    human.enroll(make_invite(server.settings, email))
    human.login()
    return human
