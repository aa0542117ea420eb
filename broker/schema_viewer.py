"""The OpenAPI schema under `/schema`, with a Swagger UI viewer served from the broker itself.

Litestar's own viewers load their scripts from public CDNs, which the broker's
`default-src 'none'` policy blocks (the page stayed blank). The viewer here uses the Swagger
UI files checked in beside this module (`swagger_ui/README.md` says which release, and how
to update it), started by a script file of ours, under a policy that admits this origin and
nothing else: no CDN, no inline script or style, no third-party request.
"""

from __future__ import annotations

import html
from importlib.resources import files
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.params import PathParameter

PATH = "/schema"
ASSETS = files("broker") / "swagger_ui"
# name -> media type: the files the viewer page loads (the rest of swagger_ui/ is licences).
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "viewer.js": "text/javascript",
}
# The viewer page's own policy (every other answer keeps `default-src 'none'`). Swagger UI
# draws its icons from data: URIs and fetches the schema, and "Try it out", from here.
VIEWER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class SwaggerViewer(OpenAPIRenderPlugin):
    """Swagger UI at `/schema` and `/schema/swagger`; its files at `/schema/assets/NAME`."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"])
        self.assets_path = f"{PATH}/assets"

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: markup only, its scripts and styles are files of this origin."""
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec = html.escape(self.get_openapi_json_route(request))
        assets = self.assets_path
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/viewer.js"></script>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        """Serve the viewer's files from the schema router."""
        self.assets_path = f"{router.path}/assets"
        router.register(get("/assets/{name:str}", sync_to_thread=False)(_asset))


def _asset(name: Annotated[str, PathParameter(max_length=64)]) -> Response[bytes]:
    """One of the viewer's files.

    Raises:
        NotFoundException: `name` is not one of them.
    """
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFoundException
    return Response((ASSETS / name).read_bytes(), media_type=media_type)


def _viewer_policy(response: Response[Any]) -> Response[Any]:
    """Give the viewer page its policy; the schema documents and 404s keep the default."""
    if response.media_type == MediaType.HTML and response.status_code == 200:
        response.headers["Content-Security-Policy"] = VIEWER_CSP
    return response


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    """`/schema`: the viewer, `/schema/openapi.json` and `/schema/openapi.yaml`."""
    router = Router(PATH, route_handlers=[], include_in_schema=False, after_request=_viewer_policy)
    return OpenAPIConfig(
        title=title,
        version=version,
        path=PATH,
        render_plugins=[SwaggerViewer(), YamlRenderPlugin()],
        openapi_router=router,
    )
