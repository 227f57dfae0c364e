"""The API docs pages (``/openapi.json``, ``/docs``, ``/redoc``) with a Content-Security-Policy fit for them.

FastAPI's pages load Swagger UI and ReDoc from a CDN and start them with an inline script. The
policy allows exactly that: scripts from the CDN plus the inline scripts of *these* pages (by
their SHA-256, so an injected script still doesn't run), the spec and "Try it out" calls to the
same origin only, and no framing. Internal services serve these on their management port only;
the gateway serves its public API's pages on its main port too (see ``common.management``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

OPENAPI_PATH = "/openapi.json"
SWAGGER_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"

CDN = "https://cdn.jsdelivr.net"  # where FastAPI's pages load Swagger UI and ReDoc from
FAVICON = "https://fastapi.tiangolo.com"
FONTS_CSS = "https://fonts.googleapis.com"  # ReDoc's fonts
FONTS = "https://fonts.gstatic.com"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """CSP sources (``'sha256-...'``) of every inline ``<script>`` of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def page_csp(html: str) -> str:
    """The Content-Security-Policy of one docs page: its own inline scripts, the CDN, same origin."""
    scripts = " ".join([CDN, *inline_script_hashes(html)])
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            # Swagger UI and ReDoc set element styles at run time; styles can't run code.
            f"style-src {CDN} {FONTS_CSS} 'unsafe-inline'",
            f"font-src {FONTS}",
            f"img-src 'self' data: {FAVICON}",
            "connect-src 'self'",  # the spec, and Swagger's "Try it out" calls
            "worker-src blob:",  # ReDoc parses the spec in a worker
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def _page(html: str) -> HTMLResponse:
    """An HTML page with its policy; cacheable for a short while (it is the same for everyone)."""
    headers = {"Content-Security-Policy": page_csp(html), "Cache-Control": "public, max-age=300"}
    return HTMLResponse(html, headers=headers)


def _html(page: HTMLResponse) -> str:
    return bytes(page.body).decode()


def docs_routes(source: FastAPI) -> list[Route]:
    """Routes serving ``source``'s spec and its Swagger UI and ReDoc pages (for any Starlette app)."""
    title = source.title
    swagger = _html(
        get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
            init_oauth=source.swagger_ui_init_oauth,
            swagger_ui_parameters=source.swagger_ui_parameters,
        )
    )
    redirect = _html(get_swagger_ui_oauth2_redirect_html())
    redoc = _html(get_redoc_html(openapi_url=OPENAPI_PATH, title=f"{title} - ReDoc"))

    async def openapi(_request: Request) -> Response:
        spec: dict[str, Any] = source.openapi()
        return JSONResponse(spec)

    async def swagger_page(_request: Request) -> Response:
        return _page(swagger)

    async def redirect_page(_request: Request) -> Response:
        return _page(redirect)

    async def redoc_page(_request: Request) -> Response:
        return _page(redoc)

    return [
        Route(OPENAPI_PATH, openapi, methods=["GET"], include_in_schema=False),
        Route(SWAGGER_PATH, swagger_page, methods=["GET"], include_in_schema=False),
        Route(OAUTH2_REDIRECT_PATH, redirect_page, methods=["GET"], include_in_schema=False),
        Route(REDOC_PATH, redoc_page, methods=["GET"], include_in_schema=False),
    ]
