"""The control server's HTTP surface: bearer auth, Host checks, and POST /rpc."""

from __future__ import annotations

__all__ = ("build_app",)

import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gate_runner.components.control.rpc import Dispatcher

# The RPC body carries at most a spec (1 MiB) plus JSON framing.
_MAX_BODY = 2 << 20
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _host_allowed(host_header: str, bound_host: str) -> bool:
    """Refuse Host names we do not serve: a DNS-rebinding page reaches 127.0.0.1 under its
    own name, and the Host header is what gives it away."""
    host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    host = host.lower()
    return host in _LOOPBACK_HOSTS or host == bound_host.lower() or host.startswith("127.")


def build_app(
    *,
    dispatcher: Dispatcher,
    token: str,
    bound_host: str,
    metrics: Callable[[str | None], tuple[bytes, str]],
) -> Starlette:
    expected = f"Bearer {token}".encode()

    def denied(request: Request) -> Response | None:
        if not _host_allowed(request.headers.get("host", ""), bound_host):
            return JSONResponse({"error": "Host not allowed"}, status_code=421)
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return JSONResponse(
                {"error": "missing or wrong bearer token (see dataDir/control.token)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    async def rpc(request: Request) -> Response:
        refusal = denied(request)
        if refusal is not None:
            return refusal
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                return JSONResponse({"error": "request body too large"}, status_code=413)
        reply: Any = await dispatcher.handle_bytes(bytes(body))
        if reply is None:
            return Response(status_code=204)
        return Response(json.dumps(reply), media_type="application/json")

    async def prometheus(request: Request) -> Response:
        refusal = denied(request)
        if refusal is not None:
            return refusal
        body, content_type = metrics(request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/rpc", rpc, methods=["POST"]),
            Route("/metrics", prometheus),
            Route("/healthz", healthz),
        ],
    )
