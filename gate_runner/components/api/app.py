"""The OpenAI-compatible API as a raw ASGI app: paths, API keys, and errors at one boundary.

Raw ASGI rather than a Starlette router: this is the hot path, and DESIGN.md section 13
measured Starlette's routing and request objects at about a tenth of the proxy's CPU.
"""

from __future__ import annotations

__all__ = ("ApiApp",)

import hmac
import json
import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from gate_runner.components.sites import SitePolicy
from gate_runner.httpclient import UpstreamError
from gate_runner.providers.registry import ProviderRegistry
from gate_runner.router import ClientGone, Proxy, send_error
from gate_runner.wire.asgi import Receive, Scope, Send, drain_body
from gate_runner.wire.openai import ENDPOINT_BY_PATH, NO_PROVIDER_HINT, OpenAIError, openai_error

log = logging.getLogger(__name__)

# What a web app listed in listen.cors.origins may do and read.
_CORS_METHODS = b"GET, POST, OPTIONS"
_CORS_EXPOSE = b"x-request-id, x-gate-node, x-gate-provider, x-gate-attempts, retry-after"
_CORS_MAX_AGE = b"600"
_NO_PROVIDER_MESSAGE = f"no provider found on this node: {NO_PROVIDER_HINT}"


def _hex(peer_id: str) -> str:
    from gate_runner.identity import NodeId

    return NodeId.parse(peer_id).hex


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _with_cors(send: Send, origin: bytes) -> Send:
    """A send that marks the response readable by the page at ``origin``."""

    async def cors_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", ()),
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", _CORS_EXPOSE),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return cors_send


async def _preflight(scope: Scope, send: Send, origin: bytes) -> None:
    """Answer a CORS preflight from an allowed origin: any header the page asks for (the
    openai JS client sends several of its own), and Chrome's private-network opt-in,
    since the API usually sits on loopback and the page on the internet."""
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", _CORS_METHODS),
        (b"access-control-max-age", _CORS_MAX_AGE),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
    ]
    for name, value in scope["headers"]:
        if name == b"access-control-request-headers":
            headers.append((b"access-control-allow-headers", value))
        elif name == b"access-control-request-private-network":
            headers.append((b"access-control-allow-private-network", b"true"))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class ApiApp:
    def __init__(
        self,
        *,
        proxy: Proxy,
        registry: ProviderRegistry,
        node_info: Callable[[], dict[str, Any]],
        sites: SitePolicy,
        api_keys: frozenset[bytes] = frozenset(),
    ) -> None:
        self.proxy = proxy
        self.registry = registry
        self.api_keys = api_keys
        self.sites = sites
        self._node_info = node_info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                origin = self._check_site(scope)
                if origin is not None:
                    if scope["method"] == "OPTIONS":
                        await _preflight(scope, send, origin)
                        return
                    send = _with_cors(send, origin)
                await self._http(scope, receive, send)
            except OpenAIError as e:  # refused before any response (the router answers its own)
                await drain_body(receive)  # unread: take it, so the connection stays usable
                await send_error(send, e)
            except (UpstreamError, ClientGone):
                raise  # mid-response: cutting the connection is all that is left
            except Exception as e:
                # The error boundary (wire/openai.py openai_error), as on the P2P side: a bug
                # still gets an OpenAI-shaped 500, not the server's bare one.
                log.exception("serving %s %s failed", scope["method"], scope["path"])
                await send_error(send, openai_error(e))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _check_site(self, scope: Scope) -> bytes | None:
        """Refuse what a web page sends on its own (DESIGN.md 7): a Host that is not ours
        (DNS rebinding), and a request from a page whose origin is not listed in
        listen.cors.origins. Returns the Origin of an allowed cross-origin caller, whose
        response then carries CORS headers; None for the usual client, which sends none."""
        host = origin = fetch_site = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
        sites = self.sites
        # No Host at all is HTTP/1.0 from a script; a browser always sends one.
        if host is not None and not sites.host_allowed(host.decode("latin-1")):
            shown = host.decode("latin-1")[:100]
            raise OpenAIError(
                f"Host {shown!r} is not a name of this API",
                status=421,
                type="invalid_request_error",
                code="misdirected_request",
                hint="reach the API at 127.0.0.1 or localhost, or list the name in "
                "spec.listen.apiHosts",
            )
        origin_text = None if origin is None else origin.decode("latin-1")
        fetch_text = None if fetch_site is None else fetch_site.decode("latin-1").lower()
        if sites.cross_site_refused(origin_text, fetch_text):
            where = f"the web page at {origin_text[:100]!r}" if origin_text else "another site"
            raise OpenAIError.forbidden(
                f"a request from {where} was refused: web pages may not use this API",
                code="cross_site_refused",
                hint="to let a web app call the API, list its origin in spec.listen.cors.origins",
            )
        return origin

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorize(self, scope: Scope) -> None:
        if not self.api_keys:
            return
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                key = value[7:].strip()
                # Compare against every key, so the time taken says nothing about which matched.
                matched = False
                for candidate in self.api_keys:
                    matched |= hmac.compare_digest(key, candidate)
                if matched:
                    return
        raise OpenAIError.unauthorized(
            hint="send Authorization: Bearer <key> with a key from spec.listen.apiKeys"
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok"})
            return
        self._authorize(scope)
        endpoint = ENDPOINT_BY_PATH.get(path)
        if endpoint is not None:
            if method != endpoint.method:
                raise OpenAIError(
                    f"{path} takes {endpoint.method}, not {method}",
                    status=405,
                    type="invalid_request_error",
                )
            await self.proxy.handle(endpoint.op, scope, receive, send)
            return
        if path == "/v1/models" or path.startswith("/v1/models/"):
            if method != "GET":
                raise OpenAIError(
                    f"{path} takes GET, not {method}", status=405, type="invalid_request_error"
                )
            await self._models(path, send)
            return
        raise OpenAIError(
            f"no route for {method} {path}",
            status=404,
            type="invalid_request_error",
            code="unknown_url",
            hint="the API is under /v1: chat/completions, completions, embeddings, models",
        )

    async def _models(self, path: str, send: Send) -> None:
        await self.registry.refresh_stale()
        node = self._node_info()
        models: dict[str, MutableMapping[str, Any]] = {}
        for entry in self.registry.entries():
            for info in entry.models:
                existing = models.get(info.id)
                if existing is not None:
                    existing["gate"]["providers"].append(entry.name)
                    continue
                models[info.id] = {
                    "id": info.id,
                    "object": "model",
                    "created": info.created,
                    "owned_by": info.owned_by,
                    "gate": {
                        "provider": entry.name,
                        "providers": [entry.name],
                        "node": _hex(entry.peer_id) if entry.peer_id else node["hex"],
                        "node_name": entry.peer_name or node["name"],
                        "local": entry.local,
                    },
                }
        if path != "/v1/models":
            model_id = path[len("/v1/models/") :]
            if model_id not in models:
                raise OpenAIError.model_not_found(
                    model_id, hint="list the models this node serves with GET /v1/models"
                )
            await _send_json(send, 200, models[model_id])
            return
        listing: dict[str, Any] = {"object": "list", "data": list(models.values())}
        if not self.registry.entries():
            listing["gate"] = {"message": _NO_PROVIDER_MESSAGE}
        await _send_json(send, 200, listing)
