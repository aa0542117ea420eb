"""The exchange endpoints: a token -> a `credential_process` document, two per provider.

``POST /v1/credentials/<provider>`` takes an agent token; ``POST /v1/credentials/<provider>/self``
takes a person's session token for their own credentials. Each door verifies its own token
type only, so a session never passes for an agent token or the reverse: the path, not the
token, says which exchange is meant.

An agent token bound to a key comes with a ``DPoP`` proof header (RFC 9449); it may be sent
as ``Authorization: DPoP <token>`` (what the SDK does) or as a Bearer: the binding, not the
scheme, decides that a proof is needed. A person's own exchange takes their session as a
bearer token, never bound (it is the person's, signed in with a key tap).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from broker.auth import HttpRequest, ServicesDep, bearer
from broker.errors import DpopProofInvalid, Unauthenticated
from broker.exchange import Exchange
from broker.routes.delegations import ModelName

# The provider's home region (the org policy's [aws] region), beside the credentials: the
# body stays exactly AWS's credential_process document, which has no member for it.
REGION_HEADER = "Vouch-Region"


class ExchangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    # Null or absent means the whole grant; an empty list names nothing, so it is refused
    # rather than read as "everything".
    models: Annotated[list[ModelName], msgspec.Meta(min_length=1, max_length=20)] | None = None
    duration_s: Annotated[int, msgspec.Meta(ge=900, le=43200)] | None = None


def exchange_route(provider: str) -> HTTPRouteHandler:
    """``POST /v1/credentials/<provider>``: the exchange in front of that provider."""

    async def exchange(
        request: HttpRequest,
        services: ServicesDep,
        data: JSONBody[ExchangeRequest | None] = None,
    ) -> Response[dict[str, object]]:
        body = data or ExchangeRequest()
        exchange = services.exchanges[provider]
        creds = await exchange.exchange(
            agent_token(request),
            proof=dpop_proof(request),
            models=body.models,
            duration_s=body.duration_s,
        )
        return Response(creds.process_document(), headers=response_headers(exchange))

    exchange.__name__ = f"exchange_{provider}"
    return post(
        f"/v1/credentials/{provider}",
        status_code=200,
        tags=["exchange"],
        summary=f"Exchange {provider}",
        description=f"Scoped, short-lived {provider} credentials for the agent token"
        " (optionally narrowed).",
    )(exchange)


def own_route(provider: str) -> HTTPRouteHandler:
    """``POST /v1/credentials/<provider>/self``: a person's own credentials for their session."""

    async def own_credentials(
        request: HttpRequest,
        services: ServicesDep,
        data: JSONBody[ExchangeRequest | None] = None,
    ) -> Response[dict[str, object]]:
        body = data or ExchangeRequest()
        exchange = services.exchanges[provider]
        creds = await exchange.exchange_person(
            bearer(request), models=body.models, duration_s=body.duration_s
        )
        return Response(creds.process_document(), headers=response_headers(exchange))

    own_credentials.__name__ = f"own_credentials_{provider}"
    return post(
        f"/v1/credentials/{provider}/self",
        status_code=200,
        tags=["exchange"],
        summary=f"Your own {provider} credentials",
        description=f"Short-lived {provider} credentials for the signed-in person (the session"
        " as bearer): the models the org policy lets them use themselves, or a subset.",
    )(own_credentials)


def agent_token(request: HttpRequest) -> str:
    """The token of `Authorization: Bearer <token>` or `Authorization: DPoP <token>`.

    Raises:
        Unauthenticated: neither.
    """
    return token_of(request.headers.get("authorization", ""))


def token_of(authorization: str) -> str:
    """`agent_token` from the Authorization header's value (broker/exchange_route.py too).

    Raises:
        Unauthenticated: neither scheme, or no token.
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in {"bearer", "dpop"} or not token.strip():
        raise Unauthenticated(
            "missing agent token (Authorization: Bearer <token>, or DPoP <token> with a proof)"
        )
    return token.strip()


def dpop_proof(request: HttpRequest) -> str | None:
    """The request's one DPoP header, or None. Raises: DpopProofInvalid for several."""
    return one_proof(request.headers.getall("dpop", []))


def one_proof(proofs: list[str]) -> str | None:
    """`dpop_proof` from the DPoP headers' values. Raises: DpopProofInvalid for several."""
    if len(proofs) > 1:
        raise DpopProofInvalid("send one DPoP header, not several")
    return proofs[0] if proofs else None


def response_headers(exchange: Exchange) -> dict[str, str]:
    headers = {"Cache-Control": "no-store"}
    if exchange.provider.region:
        headers[REGION_HEADER] = exchange.provider.region
    return headers


def routes(providers: Iterable[str]) -> list[HTTPRouteHandler]:
    return [route(name) for name in providers for route in (exchange_route, own_route)]
