"""A recorded-contract Ollama server: the wire shapes of /api/version, /api/tags, /api/chat,
/api/generate and /api/embed (no Ollama binary can be installed here).

The shapes, messages and statuses follow Ollama's source at commit fb30760 (tag v0.33.0-rc2):
api/types.go for the bodies, server/routes.go for the handlers and their errors. Update
them together with VERSION when checking against a newer Ollama.

Run it with ``python -m tests.fakes.ollama --port N [--models a,b] [--delay S]
[--load-delay S]``; port 0 picks a free one. It prints ``listening on http://HOST:PORT``
once it accepts connections.

Answers are deterministic. Chat and generate echo the words of the last user message (or
the prompt), one word per NDJSON line, at most ``options.num_predict`` of them: cut short,
``done_reason`` is "length", else "stop". ``format`` makes the answer ``{"echo": "..."}``
in one piece. ``tools`` make it call every tool in turn with ``{"text": <message>}``; each
call has an id (``call_`` and 8 characters, as Ollama's toolCallId makes) and costs
``1 + words`` tokens, and a call that ``num_predict`` cuts is not sent ("length").
``logprobs`` (with ``top_logprobs``, 0 to 20) adds api.Logprob entries to every line.
Token counts are word counts. Embeddings are unit vectors derived from a hash of each input
(8 dimensions, or ``dimensions``); an input of "" gets no embedding at all, as Ollama
answers it. A model not served gets a 404 ``model 'x' not found``.

Models whose names start with ``think-`` think, as thinking-capable models do: unless
``think`` is false they send ``thinking`` ("Thinking about: <words>") before the answer,
which counts against ``num_predict``. Other models answer a true or string ``think`` with a
400, and every model answers an unknown ``think`` value with a 400, as Ollama does.
Names ending in ``-cloud`` are cloud models on a server that is not signed in: a 401 with
a ``signin_url``.

Fault modes, chosen by the model name so that tests reach them through Gate unchanged.
Names with these prefixes are always served, listed in /api/tags or not:

- ``slow-*``: sleeps ``--delay`` seconds (default 0.2) before every NDJSON line; a
  non-streamed answer waits that long per word before any byte is sent, as Ollama sends
  nothing of a non-streamed answer until it is complete (writeChatResponse).
- ``dying-*``: sends two lines, then drops the connection mid-body, without ``done``
  (non-streamed: half of the JSON body, then the drop).
- ``error-*``: sends two lines, then ``{"error": "..."}`` and ends the body cleanly,
  as Ollama does when the runner fails mid-stream (non-streamed: a 500 with that error).
- ``garbage-*``: sends two lines, then a line that is not JSON (non-streamed: a 200
  whose body is not JSON).

/api/embed answers ``error-*`` and ``dying-*`` models with a 400 naming the runner's
failure: EmbedHandler answers 400 for any error that is not already an HTTP status.

``--load-delay S`` makes the first request for each model wait S seconds before sending
anything, not even the head, as Ollama does while it loads a model.
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

__all__ = ("DEFAULT_MODELS", "FAULTS", "VERSION", "FakeOllama", "create_app", "main", "serve")

VERSION = "0.33.0-rc2"  # what a build of commit fb30760 reports
DEFAULT_MODELS = ("llama3.2:latest", "all-minilm:latest")
FAULTS = ("slow-", "dying-", "error-", "garbage-")
THINKING = "think-"
CLOUD = "-cloud"
MODIFIED_AT = "2024-05-01T12:00:00.123456789+02:00"  # nanoseconds and an offset, as Ollama writes
EMBED_DIMS = 8
RUNNER_ERROR = "an error was encountered while running the model: unexpected EOF"
# What EmbedHandler answers (with a 400) when its runner dies under a request.
EMBED_RUNNER_ERROR = 'do embedding request: Post "http://127.0.0.1:40121/v1/embeddings": EOF'
SIGNIN_URL = "https://ollama.com/connect?name=fake&key=c3NoLWVkMjU1MTk"
THINK_LEVELS = ("high", "medium", "low", "max")
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


def _call_id(seed: str) -> str:
    # Ollama's ids are random; these are derived from the call, so answers stay repeatable.
    digest = hashlib.sha256(seed.encode()).digest()
    return "call_" + "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in digest[:8])


def _logprobs(token: str, position: int, top: int) -> list[dict[str, Any]]:
    """One api.Logprob for ``token``, with ``top`` alternatives (server/logprob.go: bytes are
    the token's UTF-8, left out when it is empty)."""

    def entry(text: str, logprob: float) -> dict[str, Any]:
        out: dict[str, Any] = {"token": text, "logprob": logprob}
        if text:
            out["bytes"] = list(text.encode())
        return out

    chosen = entry(token, -round(0.05 * (1 + position % 7), 4))
    if top > 0:
        alternatives = [f"{token.strip() or '_'}{k}" for k in range(1, top)]
        chosen["top_logprobs"] = [
            entry(token, chosen["logprob"]),
            *(entry(t, chosen["logprob"] - k) for k, t in enumerate(alternatives, 1)),
        ]
    return [chosen]


def _think_error(model: str, think: object) -> Response | None:
    """The 400s Ollama answers ``think`` with (api.ThinkValue.UnmarshalJSON, ChatHandler)."""
    if think is None or think is False:
        return None
    if isinstance(think, str) and think not in THINK_LEVELS:
        return _error(
            400,
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true,'
            " or false)",
        )
    if not isinstance(think, bool | str):
        return _error(
            400,
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        )
    if not model.startswith(THINKING):
        return _error(400, f'"{model}" does not support thinking')
    return None


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

    def __init__(
        self, *, models: Sequence[str] = DEFAULT_MODELS, delay: float = 0.2, load_delay: float = 0
    ) -> None:
        self.models = tuple(_full_name(m) for m in models)
        self.delay = delay
        self.load_delay = load_delay
        self._loaded: set[str] = set()

    def serves(self, model: str) -> bool:
        return (
            _fault(model) is not None or model.endswith(CLOUD) or _full_name(model) in self.models
        )

    async def _load(self, model: str) -> None:
        # Ollama sends nothing, not even the head, until the model is loaded.
        if model not in self._loaded:
            await anyio.sleep(self.load_delay)
            self._loaded.add(model)

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
        refused = self._refused(body)
        if refused is not None:
            return refused
        await self._load(model)
        if not messages:
            return JSONResponse(self._load_reply(model, {"message": _assistant("")}))
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        prompt_tokens = sum(len(_words(_text(m.get("content")))) for m in messages) or 1
        tools = body.get("tools")
        thinking, budget = self._thinking(last_user, body)
        pieces: list[dict[str, Any]] = [{"message": _assistant("", thinking=t)} for t in thinking]
        if tools:
            names: list[str] = []
            for i, tool in enumerate(tools):
                try:
                    names.append(tool["function"]["name"])
                except (LookupError, TypeError):
                    return _error(400, f"tools[{i}].function.name is required")
            reason = "stop"
            for i, name in enumerate(names):
                cost = 1 + len(_words(last_user))
                if cost > budget:
                    reason = "length"  # the model ran out of tokens inside this call
                    break
                budget -= cost
                call = {
                    "id": _call_id(f"{i}:{name}:{last_user}"),
                    "function": {"index": i, "name": name, "arguments": {"text": last_user}},
                }
                pieces.append({"message": _assistant("", tool_calls=[call])})
        else:
            texts, reason = self._pieces(last_user, body, budget)
            pieces += [{"message": _assistant(t)} for t in texts]
        if budget < 0:
            reason = "length"  # cut while thinking
        final = {"message": _assistant("")}
        return await self._answer(body, pieces, final, reason, prompt_tokens, merge=_merge_chat)

    async def generate(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        refused = self._refused(body)
        if refused is not None:
            return refused
        await self._load(body["model"])
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return JSONResponse(self._load_reply(body["model"], {"response": ""}))
        thinking, budget = self._thinking(prompt, body)
        texts, reason = self._pieces(prompt, body, budget)
        pieces = [{"response": "", "thinking": t} for t in thinking]
        pieces += [{"response": t} for t in texts]
        if budget < 0:
            reason = "length"  # cut while thinking
        final = {"response": "", "context": list(range(1, len(texts) + 2))}
        return await self._answer(
            body, pieces, final, reason, len(_words(prompt)) or 1, merge=_merge_generate
        )

    async def embed(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        value = body.get("input")
        # A string "" is no input at all (EmbedHandler skips it); an array's "" is embedded.
        inputs = ([value] if value else []) if isinstance(value, str) else value
        if not isinstance(inputs, list) or not all(isinstance(v, str) for v in inputs):
            return _error(400, "invalid input type")
        await self._load(body["model"])
        if not inputs:
            return JSONResponse({"model": body["model"], "embeddings": []})
        if _fault(body["model"]) in ("error", "dying"):
            return _error(400, EMBED_RUNNER_ERROR)
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
            return _error(404, f"model '{model}' not found")
        return body

    def _refused(self, body: dict[str, Any]) -> Response | None:
        """What chat and generate refuse before running anything, in Ollama's order."""
        top = body.get("top_logprobs", 0)
        if not isinstance(top, int) or not 0 <= top <= 20:
            return _error(400, "top_logprobs must be between 0 and 20")
        model = body["model"]
        if model.endswith(CLOUD):
            return JSONResponse({"error": "unauthorized", "signin_url": SIGNIN_URL}, 401)
        return _think_error(model, body.get("think"))

    def _thinking(self, text: str, body: dict[str, Any]) -> tuple[list[str], int]:
        """The thinking pieces and the tokens left for the answer (below 0: cut short)."""
        limit = _limit(body)
        # A thinking-capable model thinks when think is left out (ChatHandler sets it true).
        if not body["model"].startswith(THINKING) or body.get("think") is False:
            return [], limit
        words = ["Thinking", "about:", *_words(text)]
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
        return pieces[:limit], limit - len(pieces)

    def _pieces(self, text: str, body: dict[str, Any], limit: int) -> tuple[list[str], str]:
        if body.get("format"):
            return [json.dumps({"echo": text})], "stop"
        words = _words(text) or ["Hello!"]
        limit = max(0, limit)
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
        if body.get("logprobs"):
            top = body.get("top_logprobs") or 0
            for i, piece in enumerate(pieces):
                message = piece.get("message", piece)
                token = message.get("content") or message.get("response") or ""
                token = token or message.get("thinking") or ""
                piece["logprobs"] = _logprobs(token, i, top)

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


def _limit(body: dict[str, Any]) -> int:
    limit = (body.get("options") or {}).get("num_predict")
    if not isinstance(limit, int) or limit < 0:
        return 512  # Ollama's -1 means "until the model stops"; keep it bounded
    return limit


def _assistant(
    content: str, *, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    # api.Message: thinking and tool_calls are omitempty
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _logprobs_of(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    merged = [lp for p in pieces for lp in p.get("logprobs", [])]
    return {"logprobs": merged} if merged else {}


def _merge_chat(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    # As writeChatResponse does: content and thinking joined, tool calls and logprobs listed.
    calls = [c for p in pieces for c in p["message"].get("tool_calls", [])]
    message = _assistant(
        "".join(p["message"]["content"] for p in pieces),
        thinking="".join(p["message"].get("thinking", "") for p in pieces),
        tool_calls=calls,
    )
    return {"message": message, **_logprobs_of(pieces)}


def _merge_generate(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"response": "".join(p["response"] for p in pieces)}
    thinking = "".join(p.get("thinking", "") for p in pieces)
    if thinking:
        merged["thinking"] = thinking
    return {**merged, "context": [1, 2, 3], **_logprobs_of(pieces)}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"  # compact, as Go writes it


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _dying(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise _DropConnection("dropping the connection on purpose (dying-* model)")


def create_app(
    *, models: Sequence[str] = DEFAULT_MODELS, delay: float = 0.2, load_delay: float = 0
) -> Starlette:
    fake = FakeOllama(models=models, delay=delay, load_delay=load_delay)
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
    load_delay: float = 0,
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
        app: Any = create_app(models=models, delay=delay, load_delay=load_delay)
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
    parser.add_argument(
        "--load-delay",
        type=float,
        default=0,
        help="seconds of silence before a model's first answer",
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    serve,
                    host=args.host,
                    port=args.port,
                    models=models,
                    delay=args.delay,
                    load_delay=args.load_delay,
                )
            )
            print(f"listening on http://{args.host}:{port}", flush=True)

    try:
        anyio.run(run, backend="trio")
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
