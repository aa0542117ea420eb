"""A person with a software security key, talking to a test broker over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions
from vouch_delegate.authenticators import DEFAULT_PIN, SoftwareAuthenticator, make_client

from tests.harness.broker import BrokerServer, make_invite


def to_json(obj: Any) -> Any:
    """A fido2 response object as plain JSON data (bytes already base64url)."""
    return json.loads(json.dumps(dict(obj), default=dict))


class Human:
    """Enrolls, logs in and approves delegations with a software authenticator."""

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
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.origin = origin
        self.email = email
        self.pin = pin
        self.device = device or SoftwareAuthenticator(key_file)
        self.session: str | None = None
        self.credential_ids: list[str] = []
        """The raw ids (base64url) of the keys this person registered, as the key sent them."""

    def client(self) -> Any:
        return make_client(self.device, self.origin, pin=lambda: self.pin, on_prompt=lambda _: None)

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(path, json=body, headers=headers)

    def register(self, options: dict[str, Any]) -> Any:
        opts = PublicKeyCredentialCreationOptions.from_dict(options["publicKey"])
        return to_json(self.client().make_credential(opts))

    def sign_assertion(self, options: dict[str, Any], *, any_key: bool = False) -> Any:
        """The key's assertion; `any_key` ignores the allow-list and signs with whatever
        discoverable credential the key holds for this RP, as a hostile client would."""
        public_key = dict(options["publicKey"], allowCredentials=[]) if any_key else None
        opts = PublicKeyCredentialRequestOptions.from_dict(public_key or options["publicKey"])
        return to_json(self.client().get_assertion(opts).get_response(0))

    def begin_enrollment(
        self, code: str | None = None, *, token: str | None = None
    ) -> httpx.Response:
        """`POST /v1/enroll/begin` with an invite code, or a session to add a key."""
        body: dict[str, Any] = {"email": self.email}
        if code is not None:
            body["code"] = code
        return self.post("/v1/enroll/begin", body, token)

    def finish_enrollment(
        self, ceremony: dict[str, Any], *, approver: Human | None = None
    ) -> httpx.Response:
        """Register this key; `approver` taps the approval the broker asks for, if any."""
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
        begin = self.begin_enrollment(code, token=token)
        begin.raise_for_status()
        done = self.finish_enrollment(begin.json(), approver=approver)
        done.raise_for_status()
        return str(done.json()["credential"])

    def login(self, *, email: str | None = "") -> str:
        begin = self.post("/v1/login/begin", {"email": self.email if email == "" else email})
        begin.raise_for_status()
        ceremony = begin.json()
        done = self.post(
            "/v1/login/complete",
            {
                "challenge_id": ceremony["challenge_id"],
                "credential": self.sign_assertion(ceremony["options"]),
            },
        )
        done.raise_for_status()
        self.session = str(done.json()["token"])
        return self.session

    def delegate(
        self, agent: str, models: list[str], ttl_s: int = 7200, **extra: Any
    ) -> dict[str, Any]:
        begin = self.post(
            "/v1/delegations/begin",
            {"agent": agent, "models": models, "ttl_s": ttl_s, **extra},
            self.session,
        )
        begin.raise_for_status()
        proposal = begin.json()
        done = self.post(
            "/v1/delegations/complete",
            {
                "challenge_id": proposal["challenge_id"],
                "credential": self.sign_assertion(proposal["options"]),
            },
            self.session,
        )
        done.raise_for_status()
        return dict(done.json())

    def tapped(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """A power-raising action: `<path>/begin` with the session, then this key's tap over
        the action's challenge at `<path>/complete`."""
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

    def invite(self, email: str) -> dict[str, Any]:
        """An admin's invite for `email` (a tap bound to it); the answer carries the code."""
        done = self.tapped("/v1/admin/invites", {"email": email})
        done.raise_for_status()
        return dict(done.json())

    def reinstate(self, email: str) -> dict[str, Any]:
        """An admin's reinstatement of a revoked person (a tap bound to it)."""
        done = self.tapped("/v1/admin/reinstatements", {"email": email})
        done.raise_for_status()
        return dict(done.json())


def person_at(server: BrokerServer, email: str, key_file: Path) -> Human:
    """A person with a fresh software key, talking to `server` (origin = its issuer)."""
    return Human(f"http://127.0.0.1:{server.port}", server.url, email, key_file)


def signed_in(server: BrokerServer, email: str, key_file: Path) -> Human:
    """`person_at`, enrolled with a server-side invite and logged in."""
    human = person_at(server, email, key_file)
    human.enroll(make_invite(server.settings, email))
    human.login()
    return human
