"""The fixed payloads of bench/gateway.py and the Python servers it and bench/gateway_parts.py
start in their own processes: the streaming upstream (raw trio, one write per SSE event), the
floor (an empty hypercorn-trio ASGI app), and for the parts: a minimal proxy on the same stack
and Gate's API app served alone.

    python bench/_gateway_servers.py sse PORT                  # upstream for "stream": true
    python bench/_gateway_servers.py floor PORT                # the stack's floor
    python bench/_gateway_servers.py proxy PORT UPSTREAM [headers] [scope]
    python bench/_gateway_servers.py api PORT UPSTREAM         # Gate's ApiApp, no node
"""

from __future__ import annotations

import json
import sys
from typing import Any

JSON_MODEL = "bench-json"
SSE_MODEL = "bench-sse"
EVENTS = 64


def _completion() -> bytes:
    """A real OpenAI chat completion (LiteLLM parses it), padded to exactly 400 bytes."""
    doc: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": JSON_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 48, "total_tokens": 57},
    }
    bare = len(json.dumps(doc, separators=(",", ":")))
    doc["choices"][0]["message"]["content"] = ("lorem ipsum " * 40)[: 400 - bare]
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert len(body) == 400, len(body)
    return body


def _event(index: int) -> bytes:
    last = index == EVENTS - 1
    delta = {"role": "assistant", "content": ""} if index == 0 else {"content": "tok "}
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": SSE_MODEL,
        "choices": [
            {"index": 0, "delta": {} if last else delta, "finish_reason": "stop" if last else None}
        ],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _models(model: str) -> bytes:
    doc = {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 1700000000, "owned_by": "bench"}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


COMPLETION = _completion()
SSE_EVENTS = [_event(i) for i in range(EVENTS)] + [b"data: [DONE]\n\n"]
SSE_BODY = b"".join(SSE_EVENTS)
JSON_MODELS = _models(JSON_MODEL)
SSE_MODELS = _models(SSE_MODEL)


def request_body(model: str, *, stream: bool) -> bytes:
    doc: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": EVENTS,
    }
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


# -- the streaming upstream ------------------------------------------------------------------
# nginx can only send a static SSE body in one write, so the proxies would relay one chunk.
# This one sends each event as its own HTTP/1.1 chunk in its own send, as an engine that
# emits tokens does, so a proxy meets 64 events (as many as it reads apart).

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_SSE_CHUNKS = [b"%x\r\n%s\r\n" % (len(e), e) for e in SSE_EVENTS]
_SSE_CHUNKS[-1] += b"0\r\n\r\n"
_MODELS_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(SSE_MODELS), SSE_MODELS)
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


async def read_request(stream: Any, buf: bytearray) -> bytes | None:
    """One HTTP/1.1 request off a kept-alive connection: returns its head (the body, sized
    by content-length, is read and dropped), or None when the client closed."""
    end = buf.find(b"\r\n\r\n")
    while end < 0:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
        end = buf.find(b"\r\n\r\n")
    head = bytes(buf[:end])
    length = 0
    at = head.lower().find(b"content-length:")
    if at >= 0:
        length = int(head[at + 15 :].split(b"\r\n", 1)[0])
    while len(buf) < end + 4 + length:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    del buf[: end + 4 + length]
    return head


async def _serve_sse_connection(stream: Any) -> None:
    import trio

    buf = bytearray()
    try:
        while (head := await read_request(stream, buf)) is not None:
            method, path = head.split(b" ", 2)[:2]
            if method == b"POST" and path.endswith(b"/chat/completions"):
                await stream.send_all(_SSE_HEAD)
                for chunk in _SSE_CHUNKS:
                    await stream.send_all(chunk)
            elif method == b"GET" and path.endswith(b"/models"):
                await stream.send_all(_MODELS_RESPONSE)
            else:
                await stream.send_all(_NOT_FOUND)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def serve_sse(port: int) -> None:
    import trio

    async def main() -> None:
        await trio.serve_tcp(_serve_sse_connection, port, host="127.0.0.1", backlog=1024)

    trio.run(main)


# -- the floor: an empty hypercorn-trio app ----------------------------------------------------

_JSON_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"400")],
}
_SSE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
}


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers like the upstream, with no routing, parsing or forwarding: what hypercorn on
    trio costs by itself. A body with "stream":true gets the 64 events, one message each."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if b'"stream":true' in body:
        await send(_SSE_START)
        for event in SSE_EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await send(_JSON_START)
        await send({"type": "http.response.body", "body": COMPLETION})


def _serve_hypercorn(app: Any, port: int) -> None:
    import anyio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.backlog = 1024
    # wrk's connections idle between its runs; keep them rather than make it reconnect.
    config.keep_alive_timeout = 60
    anyio.run(serve, app, config, backend="trio")


def serve_floor(port: int) -> None:
    _serve_hypercorn(floor_app, port)


# -- the parts: a minimal proxy, and Gate's API app alone --------------------------------------

_GATE_HEADERS = [
    (b"x-gate-node", b"bench"),
    (b"x-gate-provider", b"upstream"),
    (b"x-gate-attempts", b"1"),
    (b"x-request-id", b"chatcmpl-019abcdef0123456789abcdef"),
]


def serve_proxy(port: int, upstream: int, *, headers: bool, scope: bool) -> None:
    """What forwarding costs on this stack with nothing else: read the body, send it to the
    upstream on a kept-alive socket, wait, frame the answer by Content-Length, send it on.
    ``headers``: Gate's four extra response headers; ``scope``: one trio cancel scope
    (a read timeout) per request, as a naive client would."""
    import contextlib
    import socket

    import trio

    idle: list[socket.socket] = []
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: %d\r\n\r\n"

    async def app(scope_: dict[str, Any], receive: Any, send: Any) -> None:
        if scope_["type"] == "lifespan":
            await floor_app(scope_, receive, send)
            return
        body = (await receive()).get("body", b"")
        if idle:
            sock = idle.pop()
        else:
            sock = socket.create_connection(("127.0.0.1", upstream))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        sock.send(request % len(body) + body)
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                with trio.move_on_after(60) if scope else contextlib.nullcontext():
                    await trio.lowlevel.wait_readable(sock)
                continue
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                length = int(buf[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(buf) - end - 4 >= length:
                    rest = buf[end + 4 :]
                    break
        idle.append(sock)
        extra = _GATE_HEADERS if headers else []
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(rest)),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": rest})

    _serve_hypercorn(app, port)


def serve_api(port: int, upstream: int) -> None:
    """Gate's ApiApp, router, request log and metrics as the node builds them, served by
    hypercorn alone: no control plane, P2P host, scheduler or reconciler around it."""
    import gc
    import tempfile
    import time
    from pathlib import Path

    import trio

    from gate_runner.components.api.app import ApiApp
    from gate_runner.components.api.component import request_recorder
    from gate_runner.components.httpserve import bind_tcp, serve_asgi
    from gate_runner.components.sites import SitePolicy
    from gate_runner.httpclient import Watchdog
    from gate_runner.metrics import Metrics
    from gate_runner.providers.base import ModelInfo
    from gate_runner.providers.openai import OpenAIBackend
    from gate_runner.providers.registry import ProviderRegistry
    from gate_runner.router import Proxy
    from gate_runner.spec import HostPort, RoutingSpec
    from gate_runner.state.db import StateDB
    from gate_runner.state.requests import RequestLog

    async def main() -> None:
        db = StateDB(Path(tempfile.mkdtemp(prefix="gate-bench-api-")) / "state.db")
        log = RequestLog(db)
        registry = ProviderRegistry()
        entry = registry.add(
            OpenAIBackend(name="upstream", url=f"http://127.0.0.1:{upstream}/v1"), source="static"
        )
        entry.set_models([ModelInfo(JSON_MODEL, 0, "bench")], at=time.monotonic())
        on_start, on_done = request_recorder(Metrics(), log)
        proxy = Proxy(
            registry=registry,
            routing=RoutingSpec(),
            node_name="bench",
            max_body=1 << 20,
            on_start=on_start,
            on_done=on_done,
        )
        app = ApiApp(
            proxy=proxy,
            registry=registry,
            node_info=lambda: {"hex": "", "name": "b"},
            sites=SitePolicy(bound_host="127.0.0.1"),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(Watchdog().run)
            await nursery.start(log.run)
            await nursery.start(proxy.run)
            gc.collect()  # as the node settles its heap once booted
            gc.freeze()
            gc.set_threshold(10_000, 10, 10)
            sock, _ = bind_tcp(HostPort("127.0.0.1", port), what="the bench's api")
            await serve_asgi(app, sock, stopping=trio.Event())

    trio.run(main)


if __name__ == "__main__":
    kind, port_arg = sys.argv[1], int(sys.argv[2])
    if kind == "proxy":
        flags = set(sys.argv[4:])
        serve_proxy(port_arg, int(sys.argv[3]), headers="headers" in flags, scope="scope" in flags)
    elif kind == "api":
        serve_api(port_arg, int(sys.argv[3]))
    else:
        {"sse": serve_sse, "floor": serve_floor}[kind](port_arg)
