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
from vouch_delegate._grant import verified_grant
from vouch_delegate._messages import AgentToken, Delegation, DelegationProposal, WebAuthnOptions
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

    def sign_assertion(self, options: Options) -> Any:
        opts = PublicKeyCredentialRequestOptions.from_dict(public_key_of(options))
        return to_json(self.client().get_assertion(opts).get_response(0))

    def enroll(self, code: str | None = None, *, token: str | None = None) -> str:
        """Register this key (with an invite code, or another key's session): its cid."""
        broker = self.broker.with_session(token)
        ceremony = broker.enroll_begin(self.email, code)
        done = broker.enroll_complete(ceremony.challenge_id, self.register(ceremony.options))
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


def person_at(server: BrokerServer, email: str, key_file: Path) -> Human:
    """A person with a fresh software key, talking to `server` (origin = its issuer)."""
    return Human(f"http://127.0.0.1:{server.port}", server.url, email, key_file)


def signed_in(server: BrokerServer, email: str, key_file: Path) -> Human:
    """`person_at`, enrolled with a server-side invite and logged in."""
    human = person_at(server, email, key_file)
    human.enroll(make_invite(server.settings, email))
    human.login()
    return human
