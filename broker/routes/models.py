"""What the signed-in person may use themselves and delegate (`vouch models`)."""

from __future__ import annotations

import msgspec
from litestar import get

from broker.auth import PersonDep, ServicesDep


class ModelInfo(msgspec.Struct, kw_only=True):
    id: str
    """The canonical Bedrock model or inference-profile id."""
    name: str
    """Its short name (what `--model` takes)."""
    use: bool
    """The person may use it themselves (`vouch credential aws`)."""
    delegate: bool
    """The person may delegate it to agents (`vouch delegate`)."""
    use_max_duration_s: int | None
    """Their longest own credential for it, when `use`."""
    delegate_max_ttl_s: int | None
    """Their longest delegation of it, when `delegate`."""


class ModelList(msgspec.Struct, kw_only=True):
    email: str
    region: str
    """The home region: where these ids are called from."""
    models: list[ModelInfo]


@get("/v1/models", tags=["models"])
async def list_models(services: ServicesDep, person: PersonDep) -> ModelList:
    """The models the org policy lets you use yourself and delegate, each with its limit."""
    org = services.org
    use, delegate = org.use_limits(person.email), org.delegation_limits(person.email)
    models = [
        ModelInfo(
            id=model,
            name=services.catalog.short_name(model),
            use=model in use,
            delegate=model in delegate,
            use_max_duration_s=use.get(model),
            delegate_max_ttl_s=delegate.get(model),
        )
        for model in sorted(set(use) | set(delegate))
    ]
    return ModelList(email=person.email, region=org.aws.region, models=models)


ROUTES = [list_models]
