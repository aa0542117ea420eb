"""The exchange endpoints: a token -> a `credential_process` document, one per provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from broker.auth import HttpRequest, ServicesDep, bearer
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
            bearer(request), models=body.models, duration_s=body.duration_s
        )
        headers = {"Cache-Control": "no-store"}
        if exchange.provider.region:
            headers[REGION_HEADER] = exchange.provider.region
        return Response(creds.process_document(), headers=headers)

    exchange.__name__ = f"exchange_{provider}"
    return post(
        f"/v1/credentials/{provider}",
        status_code=200,
        tags=["exchange"],
        summary=f"Exchange {provider}",
        description=f"Scoped, short-lived {provider} credentials for the agent token"
        " (optionally narrowed).",
    )(exchange)


def routes(providers: Iterable[str]) -> list[HTTPRouteHandler]:
    return [exchange_route(name) for name in providers]
