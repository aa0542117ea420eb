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

    def client(self) -> Any:
        return make_client(self.device, self.origin, pin=lambda: self.pin, on_prompt=lambda _: None)

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(path, json=body, headers=headers)

    def register(self, options: dict[str, Any]) -> Any:
        opts = PublicKeyCredentialCreationOptions.from_dict(options["publicKey"])
        return to_json(self.client().make_credential(opts))

    def sign_assertion(self, options: dict[str, Any]) -> Any:
        opts = PublicKeyCredentialRequestOptions.from_dict(options["publicKey"])
        return to_json(self.client().get_assertion(opts).get_response(0))

    def enroll(self, code: str | None = None, *, token: str | None = None) -> str:
        begin = self.post("/v1/enroll/begin", {"email": self.email, "code": code}, token)
        begin.raise_for_status()
        ceremony = begin.json()
        done = self.post(
            "/v1/enroll/complete",
            {
                "challenge_id": ceremony["challenge_id"],
                "credential": self.register(ceremony["options"]),
            },
        )
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


def person_at(server: BrokerServer, email: str, key_file: Path) -> Human:
    """A person with a fresh software key, talking to `server` (origin = its issuer)."""
    return Human(f"http://127.0.0.1:{server.port}", server.url, email, key_file)


def signed_in(server: BrokerServer, email: str, key_file: Path) -> Human:
    """`person_at`, enrolled with a server-side invite and logged in."""
    human = person_at(server, email, key_file)
    human.enroll(make_invite(server.settings, email))
    human.login()
    return human
