"""A local STS for tests: AWS's AssumeRoleWithWebIdentity checks in front of moto.

moto's STS returns credentials for anything. The gate is an HTTP server that a boto3 STS
client uses as `endpoint_url`; for AssumeRoleWithWebIdentity it checks what AWS checks, in
AWS's order as far as we can tell, and answers AWS's XML errors (botocore raises
ClientError with the same code):

1. parameters (ValidationError, every problem in one message);
2. the token: a JWT with an allowed alg (InvalidIdentityToken), an `iss` registered as an
   IAM OIDC provider in moto, its `kid` in the issuer's JWKS fetched over HTTP, a valid
   signature, required claims, exp (ExpiredTokenException) and iat, `aud` in the provider's
   client ids;
3. session tags and source identity from the token (ValidationError);
4. the role exists and its trust policy allows the caller (AccessDenied), judged by
   `policies.evaluator` with the provider's `:aud`/`:sub` keys, `sts:RoleSessionName`,
   `sts:SourceIdentity`, `aws:RequestTag/*`, `aws:TagKeys`;
5. DurationSeconds <= the role's MaxSessionDuration (ValidationError);
6. the session policy's grammar (MalformedPolicyDocument), then the packed size of
   policy + tags (PackedPolicyTooLarge, an approximation: see sts_checks.packed_percent).

A call that passes is forwarded to moto unchanged; the answer gains the fields real STS
adds (SubjectFromWebIdentityToken, Audience, Provider, SourceIdentity, PackedPolicySize).
Other actions (GetCallerIdentity, ...) are forwarded untouched, so credentials from the
gate work against moto through it. Faults (throttling, 5xx, delays) apply only to
AssumeRoleWithWebIdentity.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import httpx
from botocore.exceptions import ClientError

from tests.harness.services import MotoServer
from tests.harness.sts_checks import (
    SKEW_S,
    Params,
    SessionTags,
    StsError,
    access_denied,
    check_claims,
    check_packed,
    check_policy,
    invalid_token,
    matched_audience,
    parse_params,
    session_tags,
    source_identity,
)
from tests.harness.sts_faults import Faults
from tests.harness.sts_jwks import JwksCache, unverified_parts
from tests.harness.sts_setup import (
    moto_client,
    provider_key,
    setup_provider_and_role,
    setup_roles,
    trust_policy,
)
from tests.harness.sts_trust import check_trust
from tests.harness.sts_wire import STS_NS, Reply, error_reply, handler_for

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = [
    "AcceptedCall",
    "RejectedCall",
    "StsGate",
    "provider_key",
    "setup_provider_and_role",
    "setup_roles",
    "trust_policy",
]

ACTION = "AssumeRoleWithWebIdentity"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Issuers on these hosts may use http: tests serve their JWKS without TLS."""
_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})", re.A)
_HOP_BY_HOP = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade"}
)


@dataclass(frozen=True)
class AcceptedCall:
    """An AssumeRoleWithWebIdentity call that passed every check and reached moto."""

    role_arn: str
    session_name: str
    claims: dict[str, Any]
    policy: str | None
    duration_s: int
    tags: dict[str, str]
    transitive_tag_keys: tuple[str, ...]
    source_identity: str | None
    access_key_id: str
    provider_arn: str
    audience: str
    packed_percent: int


@dataclass(frozen=True)
class RejectedCall:
    """An AssumeRoleWithWebIdentity call answered with an error (a failed check or a fault)."""

    code: str
    message: str
    status: int
    role_arn: str | None = None
    session_name: str | None = None


@dataclass(frozen=True)
class _Checked:
    params: Params
    claims: dict[str, Any]
    provider_arn: str
    audience: str
    tags: SessionTags = field(default_factory=SessionTags)
    source_identity: str | None = None
    packed_percent: int = 0


class StsGate:
    """The local STS: `start()`, point boto3 at `url`, read `accepted` / `rejected` / `calls`."""

    def __init__(
        self,
        moto: MotoServer,
        *,
        clock: Callable[[], float] = time.time,
        skew_s: int = SKEW_S,
        jwks_timeout_s: float = 5.0,
    ) -> None:
        self.moto = moto
        self.clock = clock
        self.skew_s = skew_s
        self._jwks = JwksCache(jwks_timeout_s)
        self._lock = threading.Lock()
        self._accepted: list[AcceptedCall] = []
        self._rejected: list[RejectedCall] = []
        self._calls = 0
        self._stopping = threading.Event()
        self._faults = Faults(self._stopping)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._moto_http: httpx.Client | None = None
        self.iam: IAMClient = moto_client(moto, "iam")

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the STS gate is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StsGate:
        self._moto_http = httpx.Client(base_url=self.moto.url, timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.handle))
        self._server.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sts-gate", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._moto_http is not None:
            self._moto_http.close()
            self._moto_http = None

    def __enter__(self) -> StsGate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read ---------------------------------------------------------------

    @property
    def accepted(self) -> list[AcceptedCall]:
        """A snapshot of the accepted calls, oldest first."""
        with self._lock:
            return list(self._accepted)

    @property
    def rejected(self) -> list[RejectedCall]:
        """A snapshot of the calls answered with an error, oldest first."""
        with self._lock:
            return list(self._rejected)

    @property
    def calls(self) -> int:
        """AssumeRoleWithWebIdentity requests received, faulted ones included."""
        with self._lock:
            return self._calls

    @property
    def jwks_fetches(self) -> int:
        """How often the gate fetched an issuer's openid-configuration and JWKS."""
        return self._jwks.fetches

    def reset(self) -> None:
        """Forget records, the call counter, faults and cached key sets."""
        with self._lock:
            self._accepted.clear()
            self._rejected.clear()
            self._calls = 0
        self._faults.reset()
        self._jwks.clear()

    # -- fault injection (AssumeRoleWithWebIdentity only) --------------------------------

    def throttle_next(self, n: int = 1) -> None:
        """The next n calls answer HTTP 400 Throttling "Rate exceeded"."""
        self._faults.throttle_next(n)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next n calls answer `status`: 503 ServiceUnavailable, else InternalFailure."""
        self._faults.fail_next(n, status)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n calls wait `seconds` before being handled (then fault or proceed)."""
        self._faults.delay_next(n, seconds)

    def hold(self) -> None:
        """Every call from now on waits until `release()`: STS answers when the test says."""
        self._faults.hold()

    def release(self) -> None:
        self._faults.release()

    def reset_faults(self) -> None:
        self._faults.reset()

    # -- request handling ----------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        form = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
        if method == "POST":
            form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("Action") != ACTION:
            return self._forward(method, path, headers, body)
        with self._lock:
            self._calls += 1
        fault = self._faults.take()
        if fault is not None:
            self._record_rejection(fault, form)
            return error_reply(fault)
        try:
            checked = self._check(form)
        except StsError as exc:
            self._record_rejection(exc, form)
            return error_reply(exc)
        except Exception as exc:  # a gate bug: fail the call loudly and keep a record
            error = StsError("InternalFailure", f"sts gate bug: {exc!r}", 500, "Receiver")
            self._record_rejection(error, form)
            return error_reply(error)
        reply = self._forward(method, path, headers, body)
        if reply.status != 200:
            return reply
        return self._accept(checked, reply)

    def _check(self, form: Mapping[str, str]) -> _Checked:
        params = parse_params(form)
        header, claims = unverified_parts(params.token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise invalid_token("Missing or invalid required claim: iss")
        provider_arn, client_ids = self._provider(issuer)
        self._jwks.verify(params.token, issuer, header)
        check_claims(claims, self.clock(), self.skew_s)
        audience = matched_audience(claims, client_ids)
        checked = _Checked(
            params, claims, provider_arn, audience, session_tags(claims), source_identity(claims)
        )
        role = self._role(params.role_arn)
        self._check_trust(checked, role["AssumeRolePolicyDocument"])
        if params.duration_s > int(role.get("MaxSessionDuration", 3600)):
            raise StsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        if params.policy is not None:
            check_policy(params.policy)
        percent = check_packed(params.policy, checked.tags)
        return dataclasses.replace(checked, packed_percent=percent)

    def _check_trust(self, checked: _Checked, document: Mapping[str, Any]) -> None:
        key = provider_key(str(checked.claims["iss"]))
        tags = checked.tags.tags
        context: dict[str, Any] = {
            f"{key}:aud": checked.audience,
            f"{key}:sub": checked.claims["sub"],
            "sts:RoleSessionName": checked.params.session_name,
            "aws:FederatedProvider": checked.provider_arn,
            **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        }
        actions = ["sts:AssumeRoleWithWebIdentity"]
        if tags:
            context["aws:TagKeys"] = list(tags)
            actions.append("sts:TagSession")
        if checked.source_identity is not None:
            context["sts:SourceIdentity"] = checked.source_identity
            actions.append("sts:SetSourceIdentity")
        check_trust(
            document,
            role_arn=checked.params.role_arn,
            provider_arn=checked.provider_arn,
            actions=actions,
            context=context,
        )

    def _provider(self, issuer: str) -> tuple[str, list[str]]:
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
        ):
            raise invalid_token(f"The issuer {issuer!r} must be an https URL")
        suffix = f":oidc-provider/{provider_key(issuer)}"
        listed = self.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        for entry in listed:
            arn = entry.get("Arn", "")
            if arn.endswith(suffix):
                found = self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
                return arn, list(found.get("ClientIDList", []))
        raise invalid_token(f"No OpenIDConnect provider found in your account for {issuer}")

    def _role(self, role_arn: str) -> Mapping[str, Any]:
        match = _ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise access_denied()
        try:
            role = self.iam.get_role(RoleName=match.group(2))["Role"]
        except ClientError:
            raise access_denied() from None
        if role["Arn"] != role_arn:
            raise access_denied()
        return role

    def _forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if self._moto_http is None:
            raise RuntimeError("the STS gate is not started")
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        response = self._moto_http.request(method, path, headers=sent, content=body)
        kept = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-type", "server", "date")
        }
        return Reply(
            response.status_code,
            response.content,
            response.headers.get("content-type", "text/xml"),
            kept,
        )

    def _accept(self, checked: _Checked, reply: Reply) -> Reply:
        root = ET.fromstring(reply.body)
        access_key = root.findtext(f".//{{{STS_NS}}}AccessKeyId") or ""
        params = checked.params
        with self._lock:
            self._accepted.append(
                AcceptedCall(
                    role_arn=params.role_arn,
                    session_name=params.session_name,
                    claims=dict(checked.claims),
                    policy=params.policy,
                    duration_s=params.duration_s,
                    tags=dict(checked.tags.tags),
                    transitive_tag_keys=checked.tags.transitive,
                    source_identity=checked.source_identity,
                    access_key_id=access_key,
                    provider_arn=checked.provider_arn,
                    audience=checked.audience,
                    packed_percent=checked.packed_percent,
                )
            )
        return Reply(200, _with_web_identity_fields(reply.body, checked), reply.content_type)

    def _record_rejection(self, error: StsError, form: Mapping[str, str]) -> None:
        with self._lock:
            self._rejected.append(
                RejectedCall(
                    error.code,
                    error.message,
                    error.status,
                    form.get("RoleArn"),
                    form.get("RoleSessionName"),
                )
            )


def _with_web_identity_fields(body: bytes, checked: _Checked) -> bytes:
    """moto's answer plus the fields real STS returns for a web identity."""
    extra = {
        "SubjectFromWebIdentityToken": str(checked.claims["sub"]),
        "Audience": checked.audience,
        "Provider": str(checked.claims["iss"]),
    }
    if checked.source_identity is not None:
        extra["SourceIdentity"] = checked.source_identity
    text = re.sub(
        r"<PackedPolicySize>\d+</PackedPolicySize>",
        f"<PackedPolicySize>{checked.packed_percent}</PackedPolicySize>",
        body.decode("utf-8"),
    )
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    closing = f"</{ACTION}Result>"
    return text.replace(closing, fields + closing, 1).encode("utf-8")
