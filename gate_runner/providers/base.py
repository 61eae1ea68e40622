"""What every provider backend offers the API: open a request, list models, check health."""

from __future__ import annotations

__all__ = (
    "Backend",
    "Body",
    "Health",
    "ModelInfo",
    "OneChunk",
    "Operation",
    "Reply",
    "UpstreamRequest",
    "json_reply",
)

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from gate_runner.httpclient import AbortSignal
from gate_runner.wire.openai import (
    ChatRequest,
    CompletionRequest,
    EmbeddingsRequest,
    Operation,
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    created: int
    owned_by: str


@dataclass(frozen=True, slots=True)
class Health:
    """Healthy (answers), Degraded (answers, but slowly or partly), Unhealthy (does not),
    or Unknown before the first check."""

    state: str
    latency_ms: float | None = None
    error: str | None = None
    version: str | None = None
    checked_at: float = field(default_factory=time.time)
    # The exception behind ``error``, for a caller that words it for a person (the prober).
    failure: Exception | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "latencyMs": None if self.latency_ms is None else round(self.latency_ms, 2),
            "error": self.error,
            "version": self.version,
            "checkedAt": self.checked_at,
        }


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A validated client request and the exact bytes it came in, so that a backend
    speaking OpenAI's format can forward them untouched."""

    op: Operation
    parsed: ChatRequest | CompletionRequest | EmbeddingsRequest
    raw_body: bytes
    request_id: str
    # Fired by the router when the client leaves: backends whose waits it reaches (those
    # on the HTTP pool, ``abortable``) end their exchange with UpstreamAborted.
    abort: AbortSignal | None = None

    @property
    def stream(self) -> bool:
        return bool(getattr(self.parsed, "stream", False))


class Body(Protocol):
    """A reply body read chunk by chunk: ``receive()`` returns b"" at the end.

    A backend whose upstream fails mid-body either raises an UpstreamError (the API then
    ends the client's response) or, for SSE, emits an error event and ends cleanly.
    """

    async def receive(self) -> bytes: ...


class OneChunk:
    """A body that is already complete: one chunk, then the end."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def receive(self) -> bytes:
        data, self._data = self._data, b""
        return data


@dataclass(slots=True)
class Reply:
    """The head of an upstream answer, ready to forward, and its body."""

    status: int
    content_type: bytes
    stream: bool  # an SSE body
    body: Body
    # Filled by translating backends as the body passes; pass-through backends leave them
    # to the API, which inspects the bytes it forwards.
    usage: dict[str, int] | None = None
    content_length: int | None = None  # when known before the body (non-streamed answers)
    # Set by a translating backend whose upstream failed mid-stream; the client got an SSE
    # error event, and the request is recorded as failed.
    failed: str | None = None
    # Set by a backend that is another Gate node: who actually answered, from its headers.
    node: str | None = None
    provider: str | None = None
    # More response headers to pass on to the client (names lowercase): Retry-After, and a
    # peer's own X-Gate-* headers.
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Backend(Protocol):
    """One provider: a local engine (ollama, openai-compatible, in-process llama.cpp).

    ``open`` sends the request and returns once the head of the answer is in, so that every
    failure before the first byte (refused, timeout, 502/503/504) surfaces there, where the
    router may still try another target.
    """

    name: str
    kind: str
    # True when ``request.abort`` ends the backend's waits (it hands it to the HTTP pool);
    # otherwise the router guards the exchange with a cancel scope.
    abortable: bool

    async def start(self) -> None:
        """Get ready before the provider is registered (load an in-process model); a no-op
        for engines in another process. Raises PermanentError when it cannot."""

    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[Reply]: ...

    async def fetch_models(self) -> list[ModelInfo]: ...

    async def check_health(self) -> Health: ...

    async def aclose(self) -> None: ...


def json_reply(answer: dict[str, Any]) -> Reply:
    """A complete, non-streamed JSON answer, with its length and token usage known."""
    data = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
    return Reply(
        status=200,
        content_type=b"application/json",
        stream=False,
        body=OneChunk(data),
        usage=answer.get("usage"),
        content_length=len(data),
    )


async def timed(check: Callable[[], Awaitable[str | None]]) -> Health:
    """Run a health probe, timing it; an exception makes the backend Unhealthy."""
    from gate_runner.errors import GateError

    began = time.perf_counter()
    try:
        version = await check()
    except (GateError, OSError, ValueError) as e:
        return Health("Unhealthy", error=str(e), failure=e)
    latency = (time.perf_counter() - began) * 1000
    # An engine that takes over a second to answer a trivial probe is overloaded.
    return Health("Degraded" if latency > 1000 else "Healthy", latency_ms=latency, version=version)
