"""The lake browser's ASGI app: pages and a JSON API over one ``LakeBrowser``, behind the safety rules.

Safety, in one place:

* read-only: only GET routes, plus POST for an image upload (a query, never stored);
* a request names rows, never files: ids must look like ids (32 hex characters), and every byte served comes
  from a ``derived`` row of a snapshot (``LakeBrowser.thumbnail`` / ``derived_bytes``); there is no static
  file route (the CSS is inline) and lineage refs are looked up in the media table only;
* filters go through the safe parser (``mm_platform.search.filters``); sizes (k, limits, uploads) are bounded;
* an optional token (``Authorization: Bearer …``, or ``?token=`` once, which sets a cookie for the pages).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from mm_platform.errors import MMPlatformError, SnapshotExpiredError, SnapshotNotFoundError
from mm_platform.lineage import LineageNotFoundError
from mm_platform.serve.api import api_router
from mm_platform.serve.pages import page_router, render_error
from mm_platform.serve.service import LakeBrowser, NotFound

__all__ = ["TOKEN_COOKIE", "create_app"]

TOKEN_COOKIE = "mmp_token"
# No scripts at all; pictures only from this server (the derived table); forms post back here only.
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'"
_NOT_FOUND = (NotFound, LineageNotFoundError, SnapshotNotFoundError, SnapshotExpiredError)


def status_of(exc: MMPlatformError) -> int:
    """404 for what is not there, 400 for the rest of what a request got wrong."""
    return 404 if isinstance(exc, _NOT_FOUND) else 400


def create_app(browser: LakeBrowser, *, token: str | None = None) -> FastAPI:
    """The app; ``token``: when set, every request must carry it."""
    app = FastAPI(
        title="mm-platform lake browser",
        description="Read-only pages and JSON over one lake: search, items with lineage, snapshots, diffs, "
        "quarantine. The JSON equals what `mmp search --json` / `mmp lineage --json` / `mmp diff --json` print.",
        version="1",
        docs_url=None,  # Swagger UI loads scripts from a CDN: the offline page below lists the API instead
        redoc_url=None,
    )
    app.state.browser = browser
    app.include_router(api_router)
    app.include_router(page_router)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        set_cookie = False
        if token is not None:
            given = _token_of(request)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "a token is required", "hint": "pass ?token=… or a Bearer token"}, 401)
            set_cookie = request.query_params.get("token") is not None
        response = await call_next(request)
        if set_cookie:
            response.set_cookie(TOKEN_COOKIE, token or "", httponly=True, samesite="strict")
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1e3:.2f}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = _CSP
        return response

    @app.exception_handler(MMPlatformError)
    async def platform_error(request: Request, exc: MMPlatformError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status_of(exc))
        return render_error(request, exc.message, exc.hint, status_of(exc))

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/search", status_code=307)

    return app


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
