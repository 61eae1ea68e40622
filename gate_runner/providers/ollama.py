"""The `ollama` backend: Ollama's native API, translated to and from OpenAI's format."""

from __future__ import annotations

__all__ = ("OllamaBackend",)

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gate_runner.httpclient import HTTPPool, Response, UpstreamError
from gate_runner.providers.base import (
    Health,
    ModelInfo,
    OneChunk,
    Reply,
    UpstreamRequest,
    json_reply,
    timed,
)
from gate_runner.spec.model import PROVIDER_TIMEOUTS
from gate_runner.wire import ollama as wire
from gate_runner.wire.openai import OpenAIError

_JSON = b"application/json"
_SSE = b"text/event-stream"


class _TranslatedStream:
    """NDJSON from Ollama in, SSE chunks out. A provider dying mid-stream becomes an SSE
    error event (the translator's close()), never a hang or a bare cut."""

    __slots__ = ("_done", "_reply", "_response", "_translator")

    def __init__(
        self,
        response: Response,
        translator: wire.OllamaChatStream | wire.OllamaGenerateStream,
        reply: Reply,
    ) -> None:
        self._response = response
        self._translator = translator
        self._reply = reply
        self._done = False

    async def receive(self) -> bytes:
        translator = self._translator
        while not self._done:
            try:
                chunk = await self._response.receive_some()
            except UpstreamError:
                chunk = b""
            out = translator.feed(chunk) if chunk else translator.close()
            if not chunk or translator.finished or translator.error is not None:
                if chunk:
                    out += translator.close()
                self._done = True
                self._reply.usage = translator.usage
                if translator.error is not None:
                    self._reply.failed = translator.error.message
            if out:
                return b"".join(out)
        return b""


class OllamaBackend:
    kind = "ollama"
    abortable = True

    def __init__(
        self, *, name: str, url: str, timeout: float = PROVIDER_TIMEOUTS["ollama"]
    ) -> None:
        self.name = name
        self.url = url
        # The pool's read timeout bounds each wait for a byte, so it covers both the silence
        # before the head (a model loading, a non-streamed answer being generated) and the
        # gaps inside a body: one setting, long by default (spec.model.PROVIDER_TIMEOUTS).
        self.timeout = timeout
        self._pool = HTTPPool(url, read_timeout=timeout)

    async def start(self) -> None:
        """Nothing to do: the engine runs in its own process."""

    @asynccontextmanager
    async def open(self, request: UpstreamRequest) -> AsyncIterator[Reply]:
        parsed = request.parsed
        model = parsed.model
        if request.op == "chat":
            path, payload = "/api/chat", wire.chat_to_ollama(parsed.raw)
        elif request.op == "completions":
            path, payload = "/api/generate", wire.completion_to_ollama(parsed.raw)
        else:
            path, payload = "/api/embed", wire.embeddings_to_ollama(parsed.raw)
        payload["model"] = model
        body = json.dumps(payload, separators=(",", ":")).encode()
        async with self._pool.stream(
            "POST", path, headers=[(b"content-type", _JSON)], body=body, abort=request.abort
        ) as response:
            if response.status != 200:
                error_body = await response.read()
                # Raw bytes: an error page that is not JSON still gets its status's meaning.
                raise wire.ollama_error(response.status, error_body, model=model, op=request.op)
            created = int(time.time())
            if request.stream:
                translator: wire.OllamaChatStream | wire.OllamaGenerateStream
                if request.op == "chat":
                    translator = wire.OllamaChatStream(
                        id=request.request_id,
                        created=created,
                        model=model,
                        include_usage=getattr(parsed, "include_usage", False),
                    )
                else:
                    translator = wire.OllamaGenerateStream(
                        id=request.request_id,
                        created=created,
                        model=model,
                        include_usage=getattr(parsed, "include_usage", False),
                    )
                reply = Reply(status=200, content_type=_SSE, stream=True, body=OneChunk(b""))
                reply.body = _TranslatedStream(response, translator, reply)
                yield reply
                return
            data = _loads(await response.read())
            if request.op == "chat":
                out = wire.ollama_chat_to_openai(
                    data, id=request.request_id, created=created, model=model
                )
            elif request.op == "completions":
                out = wire.ollama_generate_to_openai(
                    data, id=request.request_id, created=created, model=model
                )
            else:
                out = wire.ollama_embed_to_openai(
                    data, model=model, encoding_format=parsed.raw.get("encoding_format")
                )
            yield json_reply(out)

    async def _get_json(self, path: str) -> Any:
        response, body = await self._pool.request("GET", path)
        if response.status != 200:
            raise UpstreamError(f"GET {self.url}{path} answered {response.status}")
        return _loads(body)

    async def fetch_models(self) -> list[ModelInfo]:
        models = wire.tags_to_models(await self._get_json("/api/tags"), owned_by=self.name)
        return [ModelInfo(id=m["id"], created=m["created"], owned_by=m["owned_by"]) for m in models]

    async def check_health(self) -> Health:
        async def probe() -> str | None:
            return wire.parse_version(await self._get_json("/api/version"))

        return await timed(probe)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise OpenAIError.bad_gateway(
            f"the provider answered something that is not JSON: {body[:200]!r}",
            code="bad_upstream_response",
        ) from e
