"""The control server's HTTP surface: POST /rpc, the WebSocket /rpc/ws, the OpenRPC
document, the login link's landing, /metrics and /healthz, every one behind the gatekeeper."""

from __future__ import annotations

__all__ = ("build_app",)

import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from gate_runner.components.control.auth import SESSION_COOKIE, SESSION_TTL, Gatekeeper, Refusal
from gate_runner.components.control.contract import openrpc_document
from gate_runner.components.control.rpc import Dispatcher
from gate_runner.components.control.ws import serve_websocket
from gate_runner.events import EventBus

# The RPC body carries at most a spec (1 MiB) plus JSON framing.
_MAX_BODY = 2 << 20

Endpoint = Callable[[Request], Awaitable[Response]]

_HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gate: {name}</title></head>
<body><h1>Gate: {name}</h1>
<p>You are logged in to this node's control plane. The web UI's pages ship in a later
release; meanwhile the CLI (<code>gate status</code>) and the JSON-RPC API at
<code>/rpc</code> (described by <a href="/rpc/openrpc.json">/rpc/openrpc.json</a>) are
available.</p></body></html>
"""


def _refusal_response(refusal: Refusal) -> Response:
    return JSONResponse(
        {"error": refusal.message}, status_code=refusal.status, headers=dict(refusal.headers)
    )


def build_app(
    *,
    dispatcher: Dispatcher,
    gatekeeper: Gatekeeper,
    events: EventBus,
    stopping: anyio.Event,
    node_name: Callable[[], str],
    metrics: Callable[[str | None], tuple[bytes, str]],
) -> Starlette:
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

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def checked(request: Request) -> Response:
            refusal = refused(request)
            if refusal is not None:
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

    async def home(request: Request) -> Response:
        return HTMLResponse(_HOME.format(name=html.escape(node_name())))

    async def login(request: Request) -> Response:
        """The one-time link from `gate ui`: trade the code for a session cookie."""
        host_or_origin = gatekeeper.check_site(
            host=request.headers.get("host", ""),
            origin=request.headers.get("origin"),
            fetch_site=request.headers.get("sec-fetch-site"),
        )
        if host_or_origin is not None:
            return _refusal_response(host_or_origin)
        client = request.client.host if request.client else "?"
        session = gatekeeper.redeem(request.query_params.get("code", ""), client=client)
        if isinstance(session, Refusal):
            return HTMLResponse(
                f"<!doctype html><title>Gate</title><p>{html.escape(session.message)}</p>",
                status_code=session.status,
                headers=dict(session.headers),
            )
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
        session = request.cookies.get(SESSION_COOKIE)
        if session is not None:
            gatekeeper.end_session(session)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/rpc", guarded(rpc), methods=["POST"]),
            WebSocketRoute("/rpc/ws", rpc_ws),
            Route("/rpc/openrpc.json", guarded(openrpc)),
            Route("/metrics", guarded(prometheus)),
            Route("/", guarded(home)),
            Route("/login", login),
            Route("/logout", guarded(logout), methods=["POST"]),
            Route("/healthz", healthz),
        ],
    )
