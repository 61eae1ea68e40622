"""The SSE pump of the `llamacpp` backend: one streamed generation, pulled from
llama-cpp-python's chunk generator a batch at a time and handed on as SSE events."""

from __future__ import annotations

__all__ = ("STREAM_WINDOW", "LlamaStream")

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from gate_runner.providers.base import Reply
from gate_runner.providers.llamaengine import Run, engine_error
from gate_runner.providers.threadbridge import run_stoppable
from gate_runner.wire.llamacpp import stream_chunk, usage_chunk
from gate_runner.wire.sse import DONE, encode_json

STREAM_WINDOW = 0.02
"""A stream is pulled from the engine a batch at a time: the chunks made within this window
reach the client together, so the hop between trio and the worker thread (about as costly as
a token of the test model) is paid once per batch, not per token. 20 ms is below what a
reader can see."""


class LlamaStream:
    """One streamed generation as SSE events. The engine's chunk generator is advanced on a
    worker thread a batch per ``receive()``, so generation runs at the reader's pace and
    stops with it: nothing runs between reads, and no task outlives the request."""

    def __init__(
        self,
        *,
        provider: str,
        run: Run,
        reply: Reply,
        request_id: str,
        model: str,
        include_usage: bool,
        object_name: str,
    ) -> None:
        self._provider = provider
        self._run = run
        self._reply = reply
        self._id = request_id
        self._model = model
        self._include_usage = include_usage
        self._object = object_name
        self._chunks: Iterator[dict[str, Any]] = iter(())
        self._created = int(time.time())
        self._head = b""
        self._finished = False

    async def start(
        self, create: Callable[..., Any], params: dict[str, Any], *, param: str
    ) -> None:
        """Begin generating and wait for the first chunk, so that a refused request
        (context overflow, bad parameters) raises here, before the reply's head."""

        def begin() -> bytes:
            self._chunks = iter(create(stream=True, **params))
            return self._pull(0.0)

        try:
            self._head = await run_stoppable(begin, self._run.stop)
        except Exception as e:
            raise engine_error(e, provider=self._provider, param=param) from e

    def _pull(self, window: float) -> bytes:
        """On a worker thread: the next chunks, as many as come within ``window``."""
        out: list[bytes] = []
        deadline = time.monotonic() + window
        for chunk in self._chunks:
            stream_chunk(
                chunk, request_id=self._id, model=self._model, include_usage=self._include_usage
            )
            self._created = chunk.get("created", self._created)
            out.append(encode_json(chunk))
            if time.monotonic() >= deadline:
                return b"".join(out)
        self._finished = True
        usage = self._run.usage()
        self._reply.usage = usage
        if self._include_usage:
            out.append(
                encode_json(
                    usage_chunk(
                        request_id=self._id,
                        object_name=self._object,
                        created=self._created,
                        model=self._model,
                        usage=usage,
                    )
                )
            )
        out.append(DONE)
        return b"".join(out)

    async def receive(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        if self._finished:
            return b""
        try:
            return await run_stoppable(partial(self._pull, STREAM_WINDOW), self._run.stop)
        except Exception as e:
            # Past the head: the client gets an error event, and the request is recorded
            # as failed.
            error = engine_error(e, provider=self._provider, param=None)
            self._finished = True
            self._reply.failed = error.message
            return encode_json(error.body())

    def close(self) -> None:
        # Throws GeneratorExit into llama-cpp-python's generator, which ends the
        # generation there. Done inline: it runs no tokens, and the caller may be cancelled.
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
