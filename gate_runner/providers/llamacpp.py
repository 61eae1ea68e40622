"""The `llamacpp` backend: a GGUF file served in this process by llama-cpp-python, one
generation at a time, on worker threads."""

from __future__ import annotations

__all__ = ("LlamaCppBackend", "llama_available")

import importlib.metadata
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread

from gate_runner.errors import PermanentError
from gate_runner.providers.base import (
    Health,
    ModelInfo,
    OneChunk,
    Reply,
    UpstreamRequest,
    json_reply,
    timed,
)
from gate_runner.providers.llamaengine import (
    Engine,
    Run,
    check_file,
    default_threads,
    engine_error,
    llama_available,
    load_engine,
)
from gate_runner.providers.llamastream import LlamaStream
from gate_runner.providers.threadbridge import run_stoppable
from gate_runner.wire.llamacpp import (
    chat_params,
    check_dimensions,
    completion_params,
    completion_to_openai,
    embedding_inputs,
    embeddings_to_openai,
    logit_bias,
)
from gate_runner.wire.openai import ChatRequest, EmbeddingsRequest, OpenAIError

_SSE = b"text/event-stream"

CLOSE_GRACE = 30.0
"""How long aclose() lets a running generation finish before it stops it."""


class LlamaCppBackend:
    """A GGUF model in this process. It loads on first use, or when ``load()`` is called.

    One ``Llama`` object is not thread-safe, so generations run one at a time: requests
    queue, in arrival order, on an anyio lock. Embeddings use a second ``Llama`` object
    opened with ``embedding=True`` on first need: in a generating context that flag makes
    llama.cpp compute pooled embeddings for every batch, for nothing. The weights are
    memory-mapped, so the second one costs only its own small context, and embeddings do
    not wait for a generation.
    """

    kind = "llamacpp"
    abortable = False

    def __init__(
        self,
        *,
        name: str,
        model_path: str | os.PathLike[str],
        n_threads: int | None = None,
        close_grace: float = CLOSE_GRACE,
    ) -> None:
        self.name = name
        self.model_path = Path(model_path).expanduser()
        self.n_threads = n_threads or default_threads()
        self.close_grace = close_grace
        self._llm: Engine | None = None
        self._embedder: Engine | None = None
        self._lock = anyio.Lock()  # one generation at a time
        self._embed_lock = anyio.Lock()
        self._load_lock = anyio.Lock()  # one load at a time, so none happens twice
        self._load_error: PermanentError | None = None
        self._run: Run | None = None  # the generation in progress, for aclose()
        self._version: str | None = None
        self._closed = False

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    async def start(self) -> None:
        """Load the model now, so that its health is known before the first request."""
        await self.load()

    async def load(self) -> None:
        """Load the model now rather than on the first request.

        Raises PermanentError when the file is missing or llama.cpp cannot load it.
        """
        await self._engine(embedding=False)

    async def _engine(self, *, embedding: bool) -> Engine:
        engine = self._embedder if embedding else self._llm
        if engine is not None:
            return engine
        async with self._load_lock:
            if self._closed:
                raise PermanentError(f"provider {self.name} is closed")
            engine = self._embedder if embedding else self._llm
            if engine is not None:
                return engine
            load = partial(
                load_engine,
                self.model_path,
                provider=self.name,
                n_threads=self.n_threads,
                embedding=embedding,
            )
            try:
                engine = await anyio.to_thread.run_sync(load)
            except PermanentError as e:
                self._load_error = e
                raise
            self._load_error = None
            if self._closed:  # aclose() ran during the load and found nothing to free
                await anyio.to_thread.run_sync(engine.close)
                raise PermanentError(f"provider {self.name} is closed")
            self._version = f"llama-cpp-python {importlib.metadata.version('llama_cpp_python')}"
            if embedding:
                self._embedder = engine
            else:
                self._llm = engine
            return engine

    async def _ready(self, *, embedding: bool) -> Engine:
        """The engine, or a 503 the router may answer from another provider."""
        try:
            return await self._engine(embedding=embedding)
        except PermanentError as e:
            raise OpenAIError(
                f"provider {self.name} cannot serve: {e.message}",
                status=503,
                type="api_error",
                code="model_load_failed",
                hint=e.hint,
            ) from e

    def _refuse_if_closed(self) -> None:
        # Checked again once a queued request holds the lock: aclose() may have run since.
        if self._closed:
            raise OpenAIError.no_provider(f"provider {self.name} is shut down")

    @asynccontextmanager
    async def open(self, request: UpstreamRequest) -> AsyncIterator[Reply]:
        parsed = request.parsed
        self._refuse_if_closed()
        if isinstance(parsed, EmbeddingsRequest):
            yield await self._embed(parsed)
            return
        if isinstance(parsed, ChatRequest):
            params, param = chat_params(parsed), "messages"
        else:
            params, param = completion_params(parsed), "prompt"
        engine = await self._ready(embedding=False)
        bias = parsed.raw.get("logit_bias")
        if bias is not None:
            params["logit_bias"] = logit_bias(bias, engine.n_vocab())
        params["model"] = parsed.model
        create = (
            engine.create_chat_completion
            if isinstance(parsed, ChatRequest)
            else engine.create_completion
        )
        async with self._lock:
            self._refuse_if_closed()
            run = Run()
            engine.gate_run = self._run = run
            stream: LlamaStream | None = None
            try:
                if not parsed.stream:
                    try:
                        out = await run_stoppable(partial(create, **params), run.stop)
                    except Exception as e:
                        raise engine_error(e, provider=self.name, param=param) from e
                    yield json_reply(completion_to_openai(out, request_id=request.request_id))
                    return
                reply = Reply(status=200, content_type=_SSE, stream=True, body=OneChunk(b""))
                stream = LlamaStream(
                    provider=self.name,
                    run=run,
                    reply=reply,
                    request_id=request.request_id,
                    model=parsed.model,
                    include_usage=parsed.include_usage,
                    object_name=(
                        "chat.completion.chunk"
                        if isinstance(parsed, ChatRequest)
                        else "text_completion"
                    ),
                )
                await stream.start(create, params, param=param)
                reply.body = stream
                yield reply
            finally:
                if stream is not None:
                    stream.close()
                engine.gate_run = self._run = None

    async def _embed(self, parsed: EmbeddingsRequest) -> Reply:
        raw = parsed.raw
        inputs = embedding_inputs(raw)
        engine = await self._ready(embedding=True)
        check_dimensions(raw, engine.n_embd())
        async with self._embed_lock:
            self._refuse_if_closed()
            # No token loop to stop here: one decode per batch of inputs, quick.
            try:
                out = await anyio.to_thread.run_sync(engine.create_embedding, inputs, parsed.model)
            except Exception as e:
                raise engine_error(e, provider=self.name, param="input") from e
        return json_reply(embeddings_to_openai(out, raw))

    async def fetch_models(self) -> list[ModelInfo]:
        """The file's stem, without loading it: ``tiny`` for ``tiny.gguf``."""
        try:
            created = int((await anyio.to_thread.run_sync(os.stat, self.model_path)).st_mtime)
        except OSError:
            created = 0
        return [ModelInfo(id=self.model_path.stem, created=created, owned_by=self.name)]

    async def check_health(self) -> Health:
        """Healthy once loaded, Unhealthy when the load failed or the file cannot be a
        model, and Unknown before the first load: a health probe does not load the model,
        which can take longer than the probe's timeout."""
        if self._closed:
            return Health("Unhealthy", error=f"provider {self.name} is shut down")
        if self._llm is None and self._embedder is None:
            error = self._load_error
            if error is None:
                try:
                    await anyio.to_thread.run_sync(check_file, self.model_path, self.name)
                except PermanentError as e:
                    error = e
            if error is not None:
                return Health("Unhealthy", error=str(error))
            return Health("Unknown", error="not loaded yet: it loads on the first request")

        async def probe() -> str | None:
            return self._version

        return await timed(probe)

    async def aclose(self) -> None:
        """Refuse new requests, let running ones finish (for up to ``close_grace`` seconds,
        then stop them at their next token), and free the models."""
        self._closed = True
        deadline = anyio.current_time() + self.close_grace
        for lock, embedding in ((self._lock, False), (self._embed_lock, True)):
            with anyio.CancelScope(deadline=deadline):
                async with lock:
                    engine = self._take(embedding=embedding)
                    if engine is not None:
                        await anyio.to_thread.run_sync(engine.close)
                    continue
            # Still running after the grace. Freeing the model under its thread would crash
            # the process, so stop the generation and let go: the request holds the engine,
            # and llama-cpp-python frees it when that ends.
            if not embedding and self._run is not None:
                self._run.stop.set()
            self._take(embedding=embedding)

    def _take(self, *, embedding: bool) -> Engine | None:
        if embedding:
            engine, self._embedder = self._embedder, None
        else:
            engine, self._llm = self._llm, None
        return engine
