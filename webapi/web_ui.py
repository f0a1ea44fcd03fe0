"""The web UI's routes: static files from ``webapi/static`` at ``/ui/``, its page at ``/``.

The UI is plain ES modules and CSS, served as they are (nothing is built or downloaded);
it reads and acts only through the API, so these routes hold no logic of their own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.routing
import tornado.web

STATIC_DIR = Path(__file__).parent / "static"


class UiFileHandler(tornado.web.StaticFileHandler):
    """A static file of the UI, always revalidated so that a new master's UI is picked up."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


Route = tuple[str | tornado.routing.Matcher, type[tornado.web.RequestHandler], dict[str, Any]]


def openapi_paths() -> dict[str, Any]:
    """The UI's routes as OpenAPI path items, for the API's document: ``/`` and each file
    under ``/ui/`` (HTML, JavaScript or CSS, not JSON)."""
    def get(summary: str, content_type: str | None = None) -> dict[str, Any]:
        ok: dict[str, Any] = {"description": "ok"}
        if content_type:
            ok["content"] = {content_type: {"schema": {"type": "string"}}}
        return {"get": {"summary": summary, "tags": ["ui"], "responses": {"200": ok}}}

    paths = {"/": get("The web UI's page", "text/html")}
    for file in sorted(STATIC_DIR.iterdir()):
        paths[f"/ui/{file.name}"] = get(f"The web UI's {file.suffix.lstrip('.')} file {file.name}")
    return paths


def ui_routes() -> list[Route]:
    """Routes serving the UI: ``/`` is its page, ``/ui/<file>`` its modules and styles."""
    static: dict[str, Any] = {"path": str(STATIC_DIR)}
    return [
        (r"/()", UiFileHandler, {**static, "default_filename": "index.html"}),
        (r"/ui/(.*)", UiFileHandler, static),
    ]
