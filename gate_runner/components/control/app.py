"""The control server's HTTP surface: POST /rpc, the WebSocket /rpc/ws, the OpenRPC
document, the web UI (its shell, its assets and the login pages), /metrics and /healthz,
and on a node the UI's way to the OpenAI API (/v1/...), every one behind the gatekeeper
and the security headers."""

from __future__ import annotations

__all__ = ("build_app",)

import functools
import gzip
import hashlib
import html
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from string import Template
from typing import Any, Final

import anyio
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gate_runner.components.control.auth import (
    LOGIN_TTL,
    SESSION_COOKIE,
    SESSION_TTL,
    Gatekeeper,
    Reason,
    Refusal,
)
from gate_runner.components.control.contract import openrpc_document
from gate_runner.components.control.headers import (
    SecurityHeaders,
    content_security_policy,
    inline_script_hashes,
)
from gate_runner.components.control.rpc import Dispatcher
from gate_runner.components.control.ws import serve_websocket
from gate_runner.events import EventBus
from gate_runner.wire.asgi import drain_body

# The RPC body carries at most a spec (1 MiB) plus JSON framing.
_MAX_BODY = 2 << 20

Endpoint = Callable[[Request], Awaitable[Response]]

# What /ui/ serves, by file suffix; any other file (the page templates, the licences) is not
# an asset. The types are spelled out because the mimetypes module reads the system's table.
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".map": "application/json",
}
_COMPRESSED: Final = frozenset({".js", ".mjs", ".css", ".svg", ".json", ".map"})
# The assets a page for someone not logged in needs. The rest (the app and the libraries it
# imports) hold no secret, but a visitor without a session belongs on the "log in" page, not
# in an app whose every call fails.
_PUBLIC: Final = frozenset({"app.css", "icon.svg"})
# A name holding a content hash (app.3f9a1c2e.js, esbuild's chunk-5XGQ2N7A.js) names bytes
# that never change: those may be kept for a year. Anything else is revalidated by ETag.
_HASHED_NAME = re.compile(r"[.-](?:[0-9a-f]{8,}|[A-Z2-7]{8})\.[a-z0-9]+$")
_IMMUTABLE = "private, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    gzipped: bytes | None  # None when gzip does not make it smaller
    content_type: str
    etag: str
    cache_control: str


@dataclass(frozen=True, slots=True)
class _Static:
    """The package's static/ directory, read once: at request time a URL path is only a key
    into ``assets``, so no request can name a file outside it."""

    assets: dict[str, _Asset]
    shell: _Asset  # index.html, served at /
    notice: Template  # notice.html, the frame of the server-rendered pages
    script_hashes: tuple[str, ...]  # the shell's inline import map, for the CSP


def _asset(body: bytes, suffix: str, name: str, content_type: str) -> _Asset:
    packed = gzip.compress(body, compresslevel=9, mtime=0) if suffix in _COMPRESSED else None
    immutable = _HASHED_NAME.search(name) is not None
    return _Asset(
        body=body,
        gzipped=packed if packed is not None and len(packed) < len(body) else None,
        content_type=content_type,
        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        cache_control=_IMMUTABLE if immutable else _REVALIDATE,
    )


def _walk(folder: Traversable, prefix: str, found: dict[str, _Asset]) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            _walk(entry, f"{path}/", found)
            continue
        suffix = PurePosixPath(entry.name).suffix.lower()
        content_type = _TYPES.get(suffix)
        if content_type is not None:
            found[path] = _asset(entry.read_bytes(), suffix, entry.name, content_type)


@functools.cache
def _static() -> _Static:
    """Read at the first build_app of the process (well under a megabyte, in the package)."""
    root = resources.files(__package__).joinpath("static")
    assets: dict[str, _Asset] = {}
    _walk(root, "", assets)
    index = root.joinpath("index.html").read_text(encoding="utf-8")
    return _Static(
        assets=assets,
        shell=_asset(index.encode(), ".html", "index.html", "text/html; charset=utf-8"),
        notice=Template(root.joinpath("notice.html").read_text(encoding="utf-8")),
        script_hashes=inline_script_hashes(index),
    )


def _not_modified(if_none_match: str | None, asset: _Asset) -> bool:
    if if_none_match is None:
        return False
    ours = {asset.etag, _gzip_etag(asset.etag)}
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return any(t == "*" or t in ours for t in tags)


def _gzip_etag(etag: str) -> str:
    return f'{etag[:-1]}-gz"'


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


def _serve(request: Request, asset: _Asset) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": asset.cache_control}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _not_modified(request.headers.get("if-none-match"), asset):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding")):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
        headers["ETag"] = _gzip_etag(asset.etag)
    return Response(body, headers=headers, media_type=asset.content_type)


# -- the server-rendered pages: no script, one stylesheet, and what to do next -------------

_RUN_GATE_UI = (
    "<p>On the machine this node runs on, run</p>\n<pre><code>gate ui</code></pre>\n"
    "<p>and open the link it prints. Run it in the folder of the node's <code>gate.yaml</code>"
    ", or point to that file with <code>gate ui -f path/to/gate.yaml</code>. The link works "
    f"once, for {LOGIN_TTL / 60:.0f} minutes.</p>"
)
# page -> (title, body). The commands say nothing about this node (its spec's path, its
# address): the pages are shown to anyone who reaches the port.
_PAGES: Final[dict[str, tuple[str, str]]] = {
    "not-logged-in": (
        "Log in",
        "<p>This is the control panel of a Gate node. To open it, you need a login link."
        f"</p>\n{_RUN_GATE_UI}",
    ),
    "session-ended": (
        "Your session has ended",
        f"<p>Sessions last {SESSION_TTL / 3600:.0f} hours, and end when you log out or the "
        "node restarts.</p>\n" + _RUN_GATE_UI,
    ),
    "login-expired": (
        "This login link has expired",
        "<p>A login link works for a short time only. Get a new one:</p>\n" + _RUN_GATE_UI,
    ),
    "login-used": (
        "This login link was used already",
        "<p>A login link works once. If you opened it in this browser a moment ago, "
        '<a href="/">go to the control panel</a>. Otherwise get a new one:</p>\n' + _RUN_GATE_UI,
    ),
    "login-unknown": (
        "This login link is not valid",
        "<p>It may be mistyped, be for another node, or be from before this node restarted "
        "(a restart ends every link). Get a new one:</p>\n" + _RUN_GATE_UI,
    ),
    "logged-out": (
        "You are logged out",
        "<p>To log in again, you need a new link.</p>\n" + _RUN_GATE_UI,
    ),
    "locked": (
        "Too many attempts",
        "<p>This address made too many failed attempts to log in, so the node refuses it "
        "for now. Try again in {wait} seconds; if your link has expired by then, run "
        "<code>gate ui</code> again.</p>",
    ),
    "refused": (
        "Request refused",
        "<p>The node refused this request: {message}.</p>\n<p>Open the control panel at the "
        "address that <code>gate ui</code> prints, in a tab of its own.</p>",
    ),
}
_PAGE_OF: Final[dict[Reason, str]] = {
    "host": "refused",
    "cross-site": "refused",
    "locked": "locked",
    "credential": "not-logged-in",
    "session": "session-ended",
    "login-unknown": "login-unknown",
    "login-used": "login-used",
    "login-expired": "login-expired",
}


def _page(
    page: str, *, status: int = 200, headers: dict[str, str] | None = None, **fill: str
) -> Response:
    title, body = _PAGES[page]
    text = _static().notice.substitute(
        title=html.escape(title),
        page=page,
        body=body.format(**{k: html.escape(v) for k, v in fill.items()}),
    )
    return HTMLResponse(text, status_code=status, headers=headers)


def _refusal_page(refusal: Refusal) -> Response:
    """A refusal as a page, for what a person opened in the browser."""
    response = _page(
        _PAGE_OF[refusal.reason],
        status=refusal.status,
        headers=dict(refusal.headers),
        wait=refusal.headers.get("Retry-After", ""),
        message=refusal.message,
    )
    return _forget_session(response, refusal)


def _refusal_response(refusal: Refusal) -> Response:
    """A refusal as JSON, for the CLI and the app's own calls."""
    response = JSONResponse(
        {"error": refusal.message}, status_code=refusal.status, headers=dict(refusal.headers)
    )
    return _forget_session(response, refusal)


def _forget_session(response: Response, refusal: Refusal) -> Response:
    """A cookie that names no live session is dropped by the browser at its first refusal.
    Each one counts as a failed attempt, and the cookie is HttpOnly: without this, a tab
    left open across a node restart would retry with it until the address is locked out."""
    if refusal.reason == "session":
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# What the UI may call of the node's OpenAI API through the control port ("Try it").
API_PATHS: Final = (
    ("/v1/chat/completions", "POST"),
    ("/v1/completions", "POST"),
    ("/v1/models", "GET"),
)
# Headers that say who is asking and from where: the gatekeeper has judged them, and the
# API must see the in-process call as the local client it is (see _ApiPassThrough).
_CALLER_HEADERS: Final = frozenset(
    {
        b"host",
        b"origin",
        b"referer",
        b"cookie",
        b"authorization",
        b"sec-fetch-site",
        b"sec-fetch-mode",
        b"sec-fetch-dest",
        b"sec-fetch-user",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    }
)


class _ApiPassThrough:
    """The web UI's way to the node's OpenAI API. The API listens on another port, another
    origin, which both the UI's CSP (connect-src 'self') and the API's own Host and Origin
    checks refuse; so the control server answers a few /v1 paths itself, by handing the
    request, in process and unbuffered (a stream goes on chunk by chunk, and a client that
    leaves cancels it upstream), to the node's API app: the same router, request log and
    limits as the API port.

    The gatekeeper has checked the caller first (Host, Origin, and a session or the control
    token). The API then sees a local client (Host 127.0.0.1, no Origin, no credential):
    a logged-in session is the node's owner, so it counts as authorized even when
    spec.listen.apiKeys is set (the node's API app for this path holds no keys)."""

    def __init__(self, api: ASGIApp, refused: Callable[[HTTPConnection], Refusal | None]):
        self._api = api
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refused(HTTPConnection(scope))
        if refusal is not None:
            await drain_body(receive)
            await _refusal_response(refusal)(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _CALLER_HEADERS]
        headers.append((b"host", b"127.0.0.1"))
        await self._api({**scope, "headers": headers, "root_path": ""}, receive, send)


def build_app(
    *,
    dispatcher: Dispatcher,
    gatekeeper: Gatekeeper,
    events: EventBus,
    stopping: anyio.Event,
    metrics: Callable[[str | None], tuple[bytes, str]],
    api: ASGIApp | None = None,
) -> ASGIApp:
    """``api``: the node's OpenAI API app, served to the UI under /v1 (a relay has none)."""
    static = _static()

    def refused(conn: HTTPConnection) -> Refusal | None:
        return gatekeeper.check(
            client=conn.client.host if conn.client else "?",
            host=conn.headers.get("host", ""),
            origin=conn.headers.get("origin"),
            authorization=conn.headers.get("authorization"),
            cookie_session=conn.cookies.get(SESSION_COOKIE),
            navigation=conn.scope["type"] == "http" and conn.scope["method"] in ("GET", "HEAD"),
            fetch_site=conn.headers.get("sec-fetch-site"),
        )

    def off_site(request: Request) -> Refusal | None:
        """The Host and cross-site checks alone, for what needs no credential."""
        return gatekeeper.check_site(
            host=request.headers.get("host", ""),
            origin=request.headers.get("origin"),
            fetch_site=request.headers.get("sec-fetch-site"),
        )

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def checked(request: Request) -> Response:
            refusal = refused(request)
            if refusal is not None:
                await drain_body(request.receive)  # so the connection stays usable
                return _refusal_response(refusal)
            return await endpoint(request)

        return checked

    async def rpc(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                return JSONResponse({"error": "request body over 2 MiB"}, status_code=413)
        reply: Any = await dispatcher.handle_bytes(bytes(body))
        if reply is None:
            return Response(status_code=204)
        return Response(json.dumps(reply), media_type="application/json")

    async def rpc_ws(websocket: WebSocket) -> None:
        refusal = refused(websocket)
        if refusal is not None:
            await websocket.send_denial_response(_refusal_response(refusal))
            return
        await websocket.accept()
        await serve_websocket(websocket, dispatcher=dispatcher, bus=events, stopping=stopping)

    async def openrpc(request: Request) -> Response:
        return JSONResponse(openrpc_document(f"{gatekeeper.base_url}/rpc"))

    async def prometheus(request: Request) -> Response:
        body, content_type = metrics(request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    async def shell(request: Request) -> Response:
        """The app at /: for a browser without a session, the page that says how to log in
        (401, so that scripts and checks see the truth; the browser shows the page)."""
        refusal = refused(request)
        if refusal is not None:
            return _refusal_page(refusal)
        return _serve(request, static.shell)

    async def ui_asset(request: Request) -> Response:
        refusal = off_site(request)
        if refusal is not None:
            return _refusal_response(refusal)
        path: str = request.path_params["path"]
        asset = static.assets.get(path)
        if asset is None:
            return Response("no such file", status_code=404, media_type="text/plain")
        if path not in _PUBLIC:
            refusal = refused(request)
            if refusal is not None:
                return _refusal_response(refusal)
        return _serve(request, asset)

    async def login(request: Request) -> Response:
        """The one-time link from `gate ui`: trade the code for a session cookie, and
        leave the code out of the address bar and the history (303 to /)."""
        refusal = off_site(request)
        if refusal is not None:
            return _refusal_page(refusal)
        code = request.query_params.get("code")
        if not code:  # no credential presented: nothing to count
            return _page("not-logged-in", status=401)
        client = request.client.host if request.client else "?"
        session = gatekeeper.redeem(code, client=client)
        if isinstance(session, Refusal):
            return _refusal_page(session)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session,
            max_age=int(SESSION_TTL),
            path="/",
            httponly=True,
            samesite="strict",
            secure=gatekeeper.secure_cookies,
        )
        return response

    async def logout(request: Request) -> Response:
        """End the session the cookie names. A form (it asks for HTML) lands on the
        "logged out" page; a script's fetch gets 204. Ending a session needs only its id,
        so no other credential is asked for, but a cross-site request is still refused."""
        wants_page = "text/html" in request.headers.get("accept", "")
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site")
        # Under Referrer-Policy: no-referrer a browser sends "Origin: null" with a form's
        # POST, our own page's too. Sec-Fetch-Site, which no page can set, says whose it is.
        if origin == "null" and fetch_site == "same-origin":
            origin = None
        refusal = gatekeeper.check_site(
            host=request.headers.get("host", ""), origin=origin, fetch_site=fetch_site
        )
        if refusal is not None:
            return _refusal_page(refusal) if wants_page else _refusal_response(refusal)
        session = request.cookies.get(SESSION_COOKIE)
        if session is not None:
            gatekeeper.end_session(session)
        response: Response
        if wants_page:
            response = RedirectResponse("/logged-out", status_code=303)
        else:
            response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def logged_out(request: Request) -> Response:
        refusal = off_site(request)
        if refusal is not None:
            return _refusal_page(refusal)
        return _page("logged-out")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes: list[Route | WebSocketRoute] = []
    if api is not None:
        passthrough = _ApiPassThrough(api, refused)
        routes += [Route(path, passthrough, methods=[method]) for path, method in API_PATHS]
    app = Starlette(
        routes=[
            *routes,
            Route("/rpc", guarded(rpc), methods=["POST"]),
            WebSocketRoute("/rpc/ws", rpc_ws),
            Route("/rpc/openrpc.json", guarded(openrpc)),
            Route("/metrics", guarded(prometheus)),
            Route("/", shell),
            Route("/ui/{path:path}", ui_asset),
            Route("/login", login),
            Route("/logout", logout, methods=["POST"]),
            Route("/logged-out", logged_out),
            Route("/healthz", healthz),
        ],
    )
    # No redirect from /ui to /ui/ (or /rpc/ to /rpc): every address is spelled one way,
    # and a redirect that lands on a 404 only tells a prober more.
    app.router.redirect_slashes = False
    return SecurityHeaders(app, csp=content_security_policy(static.script_hashes))
