"""OIDC discovery, JWKS, health, readiness and (when exposed) metrics."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import MediaType, Response, get
from litestar.handlers import HTTPRouteHandler

from broker.auth import ServicesDep
from broker.errors import StoreUnavailable
from broker.keys import ALGORITHM
from broker.store import guard


@get("/.well-known/openid-configuration", sync_to_thread=False, tags=["discovery"])
def openid_configuration(services: ServicesDep) -> Response[Mapping[str, object]]:
    """The OIDC discovery document AWS IAM reads to find the JWKS."""
    issuer = services.settings.issuer
    body = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "iat",
            "exp",
            "jti",
            "amr",
            "https://aws.amazon.com/source_identity",
            "https://aws.amazon.com/tags",
        ],
    }
    return Response(body, headers={"Cache-Control": "public, max-age=300"})


@get("/.well-known/jwks.json", tags=["discovery"])
async def jwks(services: ServicesDep) -> Response[Mapping[str, object]]:
    """Every public key a verifier may meet: active, next and retired; never a revoked one
    (Redis is asked first, so no replica publishes a key revoked a moment ago)."""
    await services.signing_keys.check_revoked()
    return Response(services.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@get("/healthz", sync_to_thread=False, tags=["ops"])
def healthz() -> dict[str, str]:
    """The process is alive (does not touch Redis)."""
    return {"status": "ok"}


@get("/readyz", tags=["ops"])
async def readyz(services: ServicesDep) -> dict[str, object]:
    """Ready to serve: Redis answers within the configured timeout, and a replicated Redis
    (Sentinel, Cluster) has a primary and nothing that can lose acknowledged revocations
    (`redis`: what a revocation waits for). `aws_cut` says whether revocations reach live
    AWS sessions (the broker has AWS credentials of its own)."""
    async with guard("checking readiness"):
        if not await services.redis.ping():
            raise StoreUnavailable("state store did not answer PING")
        topology = await services.revocations.replication.ready()
    ready: dict[str, object] = {
        "status": "ready",
        "aws_cut": "enabled" if services.aws_cut.enabled else "disabled",
    }
    if topology is not None:
        ready["redis"] = topology
    return ready


@get("/metrics", sync_to_thread=False, media_type=MediaType.TEXT, tags=["ops"])
def metrics_route(services: ServicesDep) -> bytes:
    """Prometheus text exposition."""
    return services.metrics.render()


def routes(*, metrics: bool) -> list[HTTPRouteHandler]:
    """The discovery and ops routes; /metrics only with `expose_metrics` (it describes traffic
    and errors, nothing the internet needs)."""
    public: list[HTTPRouteHandler] = [openid_configuration, jwks, healthz, readyz]
    return [*public, metrics_route] if metrics else public
