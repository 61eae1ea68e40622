"""A misbehaving OpenAI-compatible upstream, for failure tests: chosen by the request's model.

``GET /v1/models`` answers normally (models ``hang``, ``garbage``, ``cut``, ``ok``), so a
node registers it as healthy; ``POST`` then misbehaves by model:

- ``hang``: reads the request and never answers; ``/stats`` counts those held (``hanging``)
  until the client closes the connection, and those received in all (``hung``).
- ``garbage``: answers bytes that are not HTTP.
- ``cut``: starts an SSE stream, sends two events, then closes the connection.
- ``cut-eof``: the same with the stream framed by the connection's close (no length, not
  chunked), so the cut looks like an end unless the events are read.
- ``eof-done``: a close-framed stream that finishes (a finish reason) without ``[DONE]``,
  as some servers end theirs.
- ``ok``: a normal JSON chat completion.
- ``slow``: an SSE stream of 200 events, 20 ms apart; ``/stats`` counts those in progress,
  so a test can see that a client's disconnect reached the upstream.

Run: ``python -m tests.fakes.badhttp --port 0`` prints ``listening on http://127.0.0.1:PORT``.
Counts open connections in ``/stats`` (``{"open": n}``) so tests can check nothing leaks.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

MODELS = ("hang", "garbage", "cut", "cut-eof", "eof-done", "ok", "slow")
OPEN = 0
STREAMING = 0  # `slow` streams in progress
HANGING = 0  # `hang` requests being held
HUNG = 0  # `hang` requests received, in all


async def _read_request(stream: trio.SocketStream) -> tuple[bytes, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        body += chunk
    return head.split(b"\r\n")[0], body


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode()
        + b"content-type: "
        + content_type
        + b"\r\n\r\n"
        + body
    )


def _chunk(model: str, content: str) -> bytes:
    event = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def _slow_stream(stream: trio.SocketStream, model: str) -> None:
    global STREAMING
    STREAMING += 1
    try:
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for i in range(200):
            event = _chunk(model, f"w{i} ")
            await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
            await trio.sleep(0.02)
        done = b"data: [DONE]\n\n"
        await stream.send_all(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    finally:
        STREAMING -= 1


async def _hang(stream: trio.SocketStream) -> None:
    """Never answer, but notice the client closing (as an engine notices its client leave)."""
    global HANGING, HUNG
    HANGING += 1
    HUNG += 1
    try:
        while await stream.receive_some(65536):
            pass
    finally:
        HANGING -= 1


async def handle(stream: trio.SocketStream) -> None:
    global OPEN
    OPEN += 1
    try:
        while True:
            request = await _read_request(stream)
            if request is None:
                return
            line, body = request
            if line.startswith(b"GET /v1/models") or line.startswith(b"GET /models"):
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "bad"} for m in MODELS
                ]
                await stream.send_all(
                    _response("200 OK", json.dumps({"object": "list", "data": data}).encode())
                )
                continue
            if line.startswith(b"GET /stats"):
                stats = {"open": OPEN, "streaming": STREAMING, "hanging": HANGING, "hung": HUNG}
                await stream.send_all(_response("200 OK", json.dumps(stats).encode()))
                continue
            model = json.loads(body or b"{}").get("model")
            if model == "hang":
                await _hang(stream)
                return
            if model == "garbage":
                await stream.send_all(b"\x00\x01 this is not http \xff\r\n\r\n")
                return
            if model == "cut":
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                for word in ("one", "two"):
                    event = _chunk(model, word)
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
                await trio.sleep(0.05)
                return
            if model in ("cut-eof", "eof-done"):
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"connection: close\r\n\r\n"
                )
                for word in ("one", "two"):
                    await stream.send_all(_chunk(model, word))
                if model == "eof-done":
                    last = json.loads(_chunk(model, "")[6:])
                    last["choices"][0]["finish_reason"] = "stop"
                    await stream.send_all(b"data: " + json.dumps(last).encode() + b"\n\n")
                await trio.sleep(0.05)
                return
            if model == "slow":
                await _slow_stream(stream, model)
                continue
            reply = {
                "id": "ok",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            await stream.send_all(_response("200 OK", json.dumps(reply).encode()))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        OPEN -= 1
        await stream.aclose()


async def main_async(port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    await trio.serve_listeners(handle, listeners)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        trio.run(main_async, args.port)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
