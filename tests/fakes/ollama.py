"""A recorded-contract Ollama server: the documented wire shapes of /api/version, /api/tags,
/api/chat, /api/generate and /api/embed (no Ollama binary can be installed here).

Run it with ``python -m tests.fakes.ollama --port N [--models a,b] [--delay S]``; port 0
picks a free one. It prints ``listening on http://HOST:PORT`` once it accepts connections.

Answers are deterministic. Chat and generate echo the words of the last user message (or
the prompt), one word per NDJSON line, at most ``options.num_predict`` of them: cut short,
``done_reason`` is "length", else "stop". ``format`` makes the answer ``{"echo": "..."}``
in one piece; ``tools`` make it one call of the first tool with ``{"text": <message>}``.
Token counts are word counts. Embeddings are unit vectors derived from a hash of each input
(8 dimensions, or ``dimensions``). A model not served gets a 404, as Ollama answers it.

Fault modes, chosen by the model name so that tests reach them through Gate unchanged.
Names with these prefixes are always served, listed in /api/tags or not:

- ``slow-*``: sleeps ``--delay`` seconds (default 0.2) before every NDJSON line; a
  non-streamed answer waits that long per word before any byte is sent.
- ``dying-*``: sends two lines, then drops the connection mid-body, without ``done``
  (non-streamed: half of the JSON body, then the drop).
- ``error-*``: sends two lines, then ``{"error": "..."}`` and ends the body cleanly,
  as Ollama does when the runner fails mid-stream (non-streamed: a 500 with that error).
- ``garbage-*``: sends two lines, then a line that is not JSON (non-streamed: a 200
  whose body is not JSON).

/api/embed answers ``error-*`` and ``dying-*`` models with a 500 ``{"error": ...}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ("DEFAULT_MODELS", "FAULTS", "VERSION", "create_app", "main", "serve")

VERSION = "0.6.8"
DEFAULT_MODELS = ("llama3.2:latest", "all-minilm:latest")
FAULTS = ("slow-", "dying-", "error-", "garbage-")
MODIFIED_AT = "2024-05-01T12:00:00.123456789+02:00"  # nanoseconds and an offset, as Ollama writes
EMBED_DIMS = 8
RUNNER_ERROR = "an error was encountered while running the model: unexpected EOF"
GARBAGE = b"<html><body>502 Bad Gateway</body></html>"
NDJSON = "application/x-ndjson"


class _DropConnection(Exception):
    """Raised inside a streamed body so that the server aborts the connection mid-body."""


def _full_name(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _fault(model: str) -> str | None:
    for prefix in FAULTS:
        if model.startswith(prefix):
            return prefix[:-1]
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    return ""


def _words(text: str) -> list[str]:
    return text.split()


def _embedding(text: str, dims: int) -> list[float]:
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [(v % 2001 - 1000) / 1000 for v in struct.unpack(f"<{dims}I", raw[: dims * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


class FakeOllama:
    """The server's state: which models it serves and how slow ``slow-*`` models are."""

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, delay: float = 0.2) -> None:
        self.models = tuple(_full_name(m) for m in models)
        self.delay = delay

    def serves(self, model: str) -> bool:
        return _fault(model) is not None or _full_name(model) in self.models

    # --- endpoints ----------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    async def tags(self, request: Request) -> Response:
        return JSONResponse(
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": MODIFIED_AT,
                        "size": 1_000_000 + 1000 * i,
                        "digest": hashlib.sha256(name.encode()).hexdigest(),
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "1B",
                            "quantization_level": "Q4_0",
                        },
                    }
                    for i, name in enumerate(self.models)
                ]
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(400, "messages must be an array of objects")
        model = body["model"]
        if not messages:
            return JSONResponse(self._load_reply(model, {"message": _assistant("")}))
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        prompt_tokens = sum(len(_words(_text(m.get("content")))) for m in messages) or 1
        tools = body.get("tools")
        if tools:
            try:
                tool = tools[0]["function"]["name"]
            except (LookupError, TypeError):
                return _error(400, "tools[0].function.name is required")
            call = {"function": {"name": tool, "arguments": {"text": last_user}}}
            pieces: list[dict[str, Any]] = [{"message": _assistant("", tool_calls=[call])}]
            reason = "stop"
        else:
            texts, reason = self._pieces(last_user, body)
            pieces = [{"message": _assistant(t)} for t in texts]
        final = {"message": _assistant("")}
        return await self._answer(body, pieces, final, reason, prompt_tokens, merge=_merge_chat)

    async def generate(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return JSONResponse(self._load_reply(body["model"], {"response": ""}))
        texts, reason = self._pieces(prompt, body)
        pieces = [{"response": t} for t in texts]
        final = {"response": "", "context": list(range(1, len(texts) + 2))}
        return await self._answer(
            body, pieces, final, reason, len(_words(prompt)) or 1, merge=_merge_generate
        )

    async def embed(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        value = body.get("input")
        inputs = [value] if isinstance(value, str) else value
        if not isinstance(inputs, list) or not all(isinstance(v, str) for v in inputs):
            return _error(400, "invalid input type: input must be a string or array of strings")
        if _fault(body["model"]) in ("error", "dying"):
            return _error(500, RUNNER_ERROR)
        dims = body.get("dimensions") or EMBED_DIMS
        started = time.monotonic_ns()
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [_embedding(text, dims) for text in inputs],
                "total_duration": time.monotonic_ns() - started + 1000,
                "load_duration": 1000,
                "prompt_eval_count": sum(len(_words(t)) for t in inputs),
            }
        )

    # --- shared ---------------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        if not raw:
            return _error(400, "missing request body")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return _error(400, f"invalid character in request body: {e}")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "model is required")
        if not self.serves(model):
            return _error(404, f'model "{model}" not found, try pulling it first')
        return body

    def _pieces(self, text: str, body: dict[str, Any]) -> tuple[list[str], str]:
        if body.get("format"):
            return [json.dumps({"echo": text})], "stop"
        words = _words(text) or ["Hello!"]
        options = body.get("options") or {}
        limit = options.get("num_predict")
        if not isinstance(limit, int) or limit < 0:
            limit = 512  # Ollama's -1 means "until the model stops"; keep it bounded
        reason = "length" if limit < len(words) else "stop"
        words = words[:limit]
        return [w if i == 0 else f" {w}" for i, w in enumerate(words)], reason

    def _load_reply(self, model: str, fields: dict[str, Any]) -> dict[str, Any]:
        # An empty prompt or message list only loads the model, as the docs describe.
        return {"model": model, "created_at": _now(), **fields, "done_reason": "load", "done": True}

    async def _answer(
        self,
        body: dict[str, Any],
        pieces: list[dict[str, Any]],
        final: dict[str, Any],
        reason: str,
        prompt_tokens: int,
        *,
        merge: Callable[[list[dict[str, Any]]], dict[str, Any]],
    ) -> Response:
        model = body["model"]
        fault = _fault(model)
        started = time.monotonic_ns()

        def stats() -> dict[str, Any]:
            total = time.monotonic_ns() - started + 2000
            return {
                "done_reason": reason,
                "done": True,
                "total_duration": total,
                "load_duration": 1000,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 500,
                "eval_count": len(pieces),
                "eval_duration": max(1, total - 1500),
            }

        if body.get("stream", True) is not False:
            return StreamingResponse(
                self._stream(model, fault, pieces, final, stats), media_type=NDJSON
            )
        if fault == "slow":
            await anyio.sleep(self.delay * max(1, len(pieces)))
        if fault == "error":
            return _error(500, RUNNER_ERROR)
        if fault == "garbage":
            return Response(GARBAGE, media_type="application/json; charset=utf-8")
        whole = {"model": model, "created_at": _now(), **merge(pieces), **stats()}
        data = json.dumps(whole, separators=(",", ":")).encode()
        if fault == "dying":
            return StreamingResponse(_dying(data[: len(data) // 2]), media_type="application/json")
        return Response(data, media_type="application/json; charset=utf-8")

    async def _stream(
        self,
        model: str,
        fault: str | None,
        pieces: list[dict[str, Any]],
        final: dict[str, Any],
        stats: Callable[[], dict[str, Any]],
    ) -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            if fault in ("dying", "error", "garbage") and i == 2:
                break  # fail after two lines (or after all of them, if there are fewer)
            if fault == "slow":
                await anyio.sleep(self.delay)
            yield _line({"model": model, "created_at": _now(), **piece, "done": False})
        if fault == "dying":
            raise _DropConnection("dropping the connection on purpose (dying-* model)")
        if fault == "error":
            yield _line({"error": RUNNER_ERROR})
            return
        if fault == "garbage":
            yield GARBAGE + b"\n"
            return
        if fault == "slow":
            await anyio.sleep(self.delay)
        yield _line({"model": model, "created_at": _now(), **final, **stats()})


def _assistant(content: str, *, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _merge_chat(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [c for p in pieces for c in p["message"].get("tool_calls", [])]
    return {
        "message": _assistant("".join(p["message"]["content"] for p in pieces), tool_calls=calls)
    }


def _merge_generate(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    return {"response": "".join(p["response"] for p in pieces), "context": [1, 2, 3]}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"  # compact, as Go writes it


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _dying(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise _DropConnection("dropping the connection on purpose (dying-* model)")


def create_app(*, models: Sequence[str] = DEFAULT_MODELS, delay: float = 0.2) -> Starlette:
    fake = FakeOllama(models=models, delay=delay)
    return Starlette(
        routes=[
            Route("/", fake.root, methods=["GET", "HEAD"]),
            Route("/api/version", fake.version, methods=["GET"]),
            Route("/api/tags", fake.tags, methods=["GET"]),
            Route("/api/chat", fake.chat, methods=["POST"]),
            Route("/api/generate", fake.generate, methods=["POST"]),
            Route("/api/embed", fake.embed, methods=["POST"]),
        ]
    )


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    models: Sequence[str] = DEFAULT_MODELS,
    delay: float = 0.2,
    shutdown: anyio.Event | None = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on trio until ``shutdown`` is set; reports the bound port when it accepts."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None  # dying-* models raise on purpose; keep their tracebacks quiet
    config.graceful_timeout = 1.0
    trigger = shutdown.wait if shutdown is not None else anyio.sleep_forever
    async with anyio.create_task_group() as tg:
        # hypercorn's own app type is a protocol starlette does not declare
        app: Any = create_app(models=models, delay=delay)
        binds = await tg.start(
            partial(hypercorn_serve, app, config, shutdown_trigger=trigger, mode="asgi")
        )
        task_status.started(int(binds[0].rsplit(":", 1)[1]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ollama",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names"
    )
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per line for slow-*")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(serve, host=args.host, port=args.port, models=models, delay=args.delay)
            )
            print(f"listening on http://{args.host}:{port}", flush=True)

    try:
        anyio.run(run, backend="trio")
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
