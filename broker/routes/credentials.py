"""The exchange endpoint: agent token -> AWS `credential_process` document."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.params import JSONBody

from broker.auth import ServicesDep, bearer
from broker.routes.delegations import ModelName


class ExchangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    models: Annotated[list[ModelName], msgspec.Meta(max_length=20)] | None = None
    duration_s: Annotated[int, msgspec.Meta(ge=900, le=43200)] | None = None


@post("/v1/credentials/aws", status_code=200, tags=["exchange"])
async def exchange_aws(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    data: JSONBody[ExchangeRequest | None] = None,
) -> Response[dict[str, Any]]:
    """Scoped, short-lived AWS credentials for the agent token (optionally narrowed)."""
    body = data or ExchangeRequest()
    creds = await services.exchange.exchange(
        bearer(request), models=body.models, duration_s=body.duration_s
    )
    return Response(creds.process_document(), headers={"Cache-Control": "no-store"})


ROUTES = [exchange_aws]
