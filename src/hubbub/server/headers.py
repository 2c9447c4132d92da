"""What browsers may do with Hubbub's responses: the page's security headers, and CORS
for the JSON API.

The chat page needs: its ES modules and its stylesheet from `/static/` (no inline
script or style; its scripts set custom properties through the CSSOM, which CSP
does not govern), images only as `data:` URLs (its icon and one CSS background),
`fetch` of the HTTP routes and a WebSocket to `/ws`, all on its own host. The
policy allows that and nothing else, and no site may frame the page.

The WebSocket's own host is also named as `ws://` and `wss://` URLs: `'self'`
covers them only in browsers that implement CSP level 3 (Chromium does; Safari
before 16 did not). The host comes from the request and is used only when it is
a plain `host[:port]`, so a forged `Host` header cannot add to the policy.

The API routes answer cross-origin requests from the origins `--allowed-origins`
allows for WebSockets (the same `OriginPolicy`), so a page of a configured site
may read them; authentication is the `Authorization` header, never a cookie, so
no credentials are allowed.
"""

import re
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from hubbub.server.keys import ORIGINS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
PREFLIGHT_MAX_AGE_SECONDS = 600


def content_security_policy(host: str | None) -> str:
    connect = ["'self'"]
    if host is not None and _PLAIN_HOST.fullmatch(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["data:"],
        "connect-src": connect,
        "base-uri": ["'none'"],
        # Without its script the welcome form submits natively, to `/?username=&room=`.
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def page_headers(request: web.Request) -> dict[str, str]:
    """The headers of the chat page."""
    return {
        "Content-Security-Policy": content_security_policy(request.host),
        "X-Frame-Options": "DENY",
        # The page's URL may hold a token (`?token=`): no other site is told it.
        "Referrer-Policy": "no-referrer",
    }


async def no_sniffing(request: web.Request, response: web.StreamResponse) -> None:
    """For `on_response_prepare`: every response is only what its Content-Type says."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


REVALIDATED = ("/static/", "/client.js")
"""Paths whose files change with every release: without a `Cache-Control`, browsers cache
them by heuristic (a tenth of their age) and may run last release's client.js beside this
release's page. `no-cache` keeps them cached but asks first (the ETag answers 304)."""


async def revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    """For `on_response_prepare`: the page's scripts and styles are revalidated before use."""
    if request.path.startswith(REVALIDATED):
        response.headers.setdefault(hdrs.CACHE_CONTROL, "no-cache")


def cors(handler: Handler) -> Handler:
    """`handler`'s answers, readable by pages of the allowed origins."""

    async def allowing(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        origin = _allowed_origin(request)
        if origin is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers.add(hdrs.VARY, "Origin")
        return response

    return allowing


async def preflight(request: web.Request) -> web.Response:
    """`OPTIONS` of an API route: a browser asks whether its page may send the request."""
    if request.headers.get(hdrs.ORIGIN) is None:
        return web.Response(status=204, headers={hdrs.ALLOW: _methods_of(request)})
    origin = _allowed_origin(request)
    if origin is None:
        return web.json_response({"error": "origin not allowed"}, status=403)
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "Authorization",
            hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_SECONDS),
            hdrs.VARY: "Origin",
        },
    )


def _methods_of(request: web.Request) -> str:
    """Every method the requested resource answers (RFC 9110's `Allow`), whether or not
    a cross-origin page may use it: `POST /rooms/{name}/messages` is for backends."""
    matched = request.match_info.route.resource
    path = matched.canonical if matched is not None else request.path
    methods = {
        route.method
        for resource in request.app.router.resources()
        if resource.canonical == path
        for route in resource
    }
    return ", ".join(sorted(methods | {"OPTIONS"}))


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or not request.app[ORIGINS].permits(origin, request.host):
        return None
    return origin
