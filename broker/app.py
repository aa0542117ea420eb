"""The Litestar application factory (no global settings: everything comes in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from broker.auth import provide_person, provide_services
from broker.exchange_route import ExchangeRoutes
from broker.middleware import observe, security_headers, unrouted
from broker.problems import EXCEPTION_HANDLERS
from broker.routes import (
    admin,
    admin_pages,
    credentials,
    delegations,
    discovery,
    keys,
    models,
    pages,
    requests,
    signin,
    usage,
)
from broker.schema_viewer import openapi_config
from broker.services import Services, build_services
from broker.settings import Settings

MAX_BODY_BYTES = 64 * 1024
TEMPLATES = Path(__file__).parent / "templates"  # the pages' (broker.routes.pages)


def create_app(settings: Settings, *, services: Services | None = None) -> Litestar:
    """The broker app; `services` may be given (tests), else built from settings."""
    built = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.services = built
        built.start()
        try:
            yield
        finally:
            await built.close()

    app = Litestar(
        route_handlers=[
            *discovery.routes(metrics=settings.expose_metrics),
            *signin.ROUTES,
            *keys.ROUTES,
            *models.ROUTES,
            *delegations.ROUTES,
            *requests.ROUTES,
            *credentials.routes(built.exchanges),
            *admin.ROUTES,
            *usage.ROUTES,
            *pages.ROUTES,
            *admin_pages.ROUTES,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "person": Provide(provide_person),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=openapi_config("Vouch broker", "0.1.0") if settings.expose_schema else None,
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        middleware=[observe],
        before_send=[security_headers, unrouted],  # unlike middleware: the router's 404/405 too
        request_max_body_size=MAX_BODY_BYTES,
        response_cache_config=ResponseCacheConfig(),
        logging_config=None,  # logs are configured once by the process (broker.logs: JSON)
        debug=False,
    )
    # The agent exchange, the hot path, is answered in front of Litestar's router with the
    # same bytes at a fraction of the cost (broker/exchange_route.py).
    app.asgi_handler = ExchangeRoutes(app, list(built.exchanges), max_body_bytes=MAX_BODY_BYTES)
    return app
