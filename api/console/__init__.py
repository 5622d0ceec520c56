"""The web console: a page at `/ui` that shows conversations, their plans and runs, and acts.

Plain static files in `static/` (no build step; ES modules, our own SVG layout), served by
`router` from the package with a Content-Security-Policy that allows this origin only: the
page loads nothing from elsewhere and can talk to nothing but this server. The page itself
needs no key (it holds no data); it asks for one when the API does, and keeps it for the tab
(`sessionStorage`). Everything it shows and does goes through the public API, the same
origin and auth as any client, plus the read-only views it needs (`api.overview`).

    GET /ui              redirects to /ui/ (so the page's relative URLs resolve under it)
    GET /ui/             the page
    GET /ui/history.html the history: conversations as the SQL history keeps them (`api.history`)
    GET /ui/{asset}      its scripts, styles and icon (a fixed list: nothing else is served)
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from api import overview
from api.errors import ApiError

# This origin only, nothing inline: scripts, styles and the API from this server, no
# frames, no forms posting anywhere (the page's forms are handled by its script).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files: always revalidated, so an upgraded package shows at once.
    "Cache-Control": "no-cache",
}

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "history.html": "text/html; charset=utf-8",
    "history.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "lam.js": "text/javascript; charset=utf-8",
    "plan.js": "text/javascript; charset=utf-8",
    "timeline.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

router = APIRouter()
router.include_router(overview.router)


def asset(name: str) -> Response:
    """One of the console's files, with the security headers; 404 for any other name."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"the console has no file {name}")
    body = files(__package__).joinpath("static", name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/ui", include_in_schema=False)
def console_root() -> RedirectResponse:
    # Relative: right behind a proxy that serves the app under a path prefix too.
    return RedirectResponse("ui/", status_code=307, headers=SECURITY_HEADERS)


@router.get("/ui/", include_in_schema=False)
def console_page() -> Response:
    return asset("index.html")


@router.get("/ui/{name}", include_in_schema=False)
def console_asset(name: str) -> Response:
    return asset(name)
