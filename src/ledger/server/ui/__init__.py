"""The incident explorer at /ui/: static pages (plain HTML, CSS and JavaScript shipped as package
data, no build step, nothing fetched from elsewhere) and the JSON endpoints they call (api.py)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ...domain.errors import invalid
from .api import ExplorerApi, error_response, unknown

FILES = {  # what /ui/<path> serves: the page shell, its script and its style
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "views.js": ("views.js", "text/javascript; charset=utf-8"),
    "timeline.js": ("timeline.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}
# The pages load only their own files and talk only to this server.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def ui_routes(api: ExplorerApi) -> list[BaseRoute]:
    static = resources.files(__package__).joinpath("static")
    loaded = {path: (static.joinpath(file).read_bytes(), kind) for path, (file, kind) in FILES.items()}
    endpoints = api.handlers()

    async def page_file(request: Request) -> Response:
        found = loaded.get(request.path_params["file"])
        if found is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain")
        body, kind = found
        headers = {"Content-Security-Policy": POLICY, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=kind, headers=headers)

    async def endpoint(request: Request) -> Response:
        method, handler = endpoints.get(request.path_params["endpoint"], ("", None))
        if handler is None:
            return error_response(unknown(request))
        if request.method != method:
            return error_response(invalid("method", f"{request.scope['path']} takes {method}, not {request.method}"))
        return await api.answer(request, handler)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308)

    return [
        Route("/ui", root, methods=["GET"]),
        Route("/ui/api/{endpoint}", endpoint, methods=["GET", "POST"]),
        Route("/ui/{file:path}", page_file, methods=["GET"]),
    ]
