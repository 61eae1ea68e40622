"""The `llamacpp` backend: a GGUF file served in this process by llama-cpp-python, one
generation at a time, on worker threads."""

from __future__ import annotations

__all__ = ("LlamaCppBackend", "llama_available")

import base64
import importlib.metadata
import importlib.util
import os
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

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
from gate_runner.wire.openai import ChatRequest, CompletionRequest, EmbeddingsRequest, OpenAIError
from gate_runner.wire.sse import DONE, encode_json

_SSE = b"text/event-stream"

MAX_CTX = 2048
"""The context is capped: llama.cpp allocates its KV cache up front (a 7B model in f16 needs
about 1 GB at 2048 tokens), and Gate serves chat turns, not long documents. A model trained
on a shorter context gets that instead, since its output degrades past it."""

STREAM_WINDOW = 0.02
"""A stream is pulled from the engine a batch at a time: the chunks made within this window
reach the client together, so the hop between trio and the worker thread (about as costly as
a token of the test model) is paid once per batch, not per token. 20 ms is below what a
reader can see."""

CLOSE_GRACE = 30.0
"""How long aclose() lets a running generation finish before it stops it."""

_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
_INSTALL_HINT = "install the extra: pip install 'gate-runner[llamacpp]'"

# Request fields passed to llama-cpp-python under the same name; the others are either
# translated below, refused with a 400, or have no meaning in-process (user, stream_options).
_CHAT_OPTIONS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "response_format",
    "functions",
    "function_call",
)
_COMPLETION_OPTIONS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "echo",
    "suffix",
)

T = TypeVar("T")


def llama_available() -> bool:
    """Whether llama-cpp-python is installed. A lookup, not an import: importing it loads
    libllama, which a node without this provider should not pay for."""
    return importlib.util.find_spec("llama_cpp") is not None


def _default_threads() -> int:
    # llama.cpp's threads spin while they wait for each other, so on two cores a second one
    # fights the node's own event loop: the rig measured 250-800 tokens/s with two threads
    # against 2,000-4,000 with one. With more cores two threads speed a real model up and
    # still leave the node (and other engines) room.
    return 1 if (os.cpu_count() or 1) <= 2 else 2


@dataclass(slots=True, eq=False)
class _Run:
    """One generation, as seen from both sides: trio sets ``stop``, the engine's token loop
    checks it and counts tokens (llama-cpp-python reports no usage in streams)."""

    stop: threading.Event = field(default_factory=threading.Event)
    prompt_tokens: int | None = None
    completion_tokens: int = 0

    def usage(self) -> dict[str, int]:
        prompt = self.prompt_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.completion_tokens,
            "total_tokens": prompt + self.completion_tokens,
        }


class _Stopped(Exception):
    """Raised inside the engine's token loop when its run is told to stop: the client went
    away or the backend is closing."""


class _Engine(Protocol):
    """What Gate uses of a loaded model (llama_cpp.Llama, subclassed by _engine_class)."""

    gate_run: _Run | None

    def create_chat_completion(self, **params: Any) -> Any: ...

    def create_completion(self, **params: Any) -> Any: ...

    def create_embedding(self, input: list[str], model: str | None = None) -> Any: ...

    def n_vocab(self) -> int: ...

    def n_embd(self) -> int: ...

    def close(self) -> None: ...


@cache
def _engine_class() -> Callable[..., Any]:
    """llama_cpp.Llama with a hook in its token loop, made on first use (importing
    llama_cpp is slow). Every path (chat or completions, streamed or not) generates through
    ``Llama.generate``, and create_chat_completion takes no stopping criteria, so this is
    the one place where a generation can be stopped from outside and its tokens counted."""
    import llama_cpp

    class GateLlama(llama_cpp.Llama):
        gate_run: _Run | None = None

        def generate(
            self, tokens: Sequence[int], *args: Any, **kwargs: Any
        ) -> Generator[int, Sequence[int] | None, None]:
            run = self.gate_run
            if run is None:
                return (yield from super().generate(tokens, *args, **kwargs))
            if run.prompt_tokens is None:
                run.prompt_tokens = len(tokens)
            vocab = llama_cpp.llama_model_get_vocab(self.model)
            # llama-cpp-python's own callers never send() into this generator.
            for token in super().generate(tokens, *args, **kwargs):
                if run.stop.is_set():
                    raise _Stopped
                # The end-of-generation token ends the answer and is not part of it.
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    run.completion_tokens += 1
                yield token

    return GateLlama


def _check_file(path: Path, provider: str) -> None:
    """Fail early and clearly on a path that cannot be a model: llama.cpp only says
    "Failed to load model from file"."""
    where = f"provider {provider}: model file {path}"
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except FileNotFoundError as e:
        raise PermanentError(
            f"{where} does not exist",
            hint="fix the provider's `model` path in gate.yaml, or put the .gguf file there",
        ) from e
    except IsADirectoryError as e:
        raise PermanentError(
            f"{where} is a directory", hint="give the path of the .gguf file in it"
        ) from e
    except OSError as e:
        raise PermanentError(
            f"{where} cannot be read: {e.strerror}",
            hint="check the file's permissions for the user running gate",
        ) from e
    if head != b"GGUF":
        raise PermanentError(
            f"{where} is not a GGUF file (it starts with {head!r}, not b'GGUF')",
            hint="download the .gguf version of the model, or convert it with llama.cpp's "
            "convert_hf_to_gguf.py",
        )


def _load_engine(path: Path, *, provider: str, n_threads: int, embedding: bool) -> _Engine:
    """Load the model (on a worker thread: it reads the weights). Raises PermanentError."""
    _check_file(path, provider)
    try:
        import llama_cpp
    except ImportError as e:
        raise PermanentError(
            f"provider {provider}: llama-cpp-python is not installed", hint=_INSTALL_HINT
        ) from e
    make = _engine_class()
    options: dict[str, Any] = {
        "model_path": str(path),
        "n_threads": n_threads,
        "n_threads_batch": n_threads,
        "verbose": False,
        "embedding": embedding,
    }
    try:
        engine = make(n_ctx=MAX_CTX, **options)
        # The trained context and the pooling are only known once the model is open; the
        # weights are memory-mapped, so opening it again with other settings is cheap.
        again: dict[str, Any] = {}
        trained = llama_cpp.llama_model_n_ctx_train(engine.model)
        if 0 < trained < MAX_CTX:
            again["n_ctx"] = trained
        # A generative model embeds each token unless told to pool, and /v1/embeddings
        # answers one vector per input. pooling_type() is typed str but returns the enum.
        if embedding and cast(int, engine.pooling_type()) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            again["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        if again:
            engine.close()
            engine = make(**(options | {"n_ctx": MAX_CTX} | again))
    except (ValueError, RuntimeError) as e:
        raise PermanentError(
            f"provider {provider}: llama.cpp cannot load {path}: {e}",
            hint="the file may be truncated (compare its size with the download's), or made "
            f"for a newer llama.cpp than llama-cpp-python {llama_cpp.__version__} has",
        ) from e
    return cast(_Engine, engine)


async def _in_worker(fn: Callable[[], T], stop: threading.Event) -> T:
    """Run ``fn`` on a worker thread. When this task is cancelled meanwhile, set ``stop``,
    which the engine checks between tokens, and still wait for ``fn``: the thread holds the
    model, so it must never outlive the call, and with ``stop`` set it ends within a token."""
    done = False
    results: list[T] = []
    failures: list[Exception] = []

    async def stop_if_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not done:
                stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_if_cancelled)
        try:
            results.append(await anyio.to_thread.run_sync(fn))
        except Exception as e:  # raised below, outside the task group's exception group
            failures.append(e)
        done = True
        tg.cancel_scope.cancel()
    if failures:
        raise failures[0]
    return results[0]


def _engine_error(error: Exception, *, provider: str, param: str | None) -> OpenAIError:
    """What an exception from llama-cpp-python means for the client."""
    if isinstance(error, _Stopped):
        return OpenAIError.no_provider(
            f"provider {provider} stopped this generation: it is shutting down",
            hint="retry; the node may serve it from another provider",
        )
    overflow = _OVERFLOW.search(str(error))
    if overflow:
        return OpenAIError.invalid_request(
            f"the prompt is {overflow[1]} tokens, more than the model's context window of "
            f"{overflow[2]}",
            param=param,
            code="context_length_exceeded",
            hint=f"shorten it; the llamacpp provider opens models with at most {MAX_CTX} "
            "tokens of context",
        )
    from jinja2 import TemplateError  # a dependency of llama-cpp-python

    if isinstance(error, ValueError | TypeError | KeyError | IndexError | TemplateError):
        # Bad parameters or messages the model's chat template cannot render.
        return OpenAIError.invalid_request(f"llama.cpp cannot run this request: {error}")
    return OpenAIError.bad_gateway(
        f"provider {provider}: llama.cpp failed: {error}", code="engine_error"
    )


def _only_one(raw: Mapping[str, Any], name: str) -> None:
    value = raw.get(name)
    if value is not None and value != 1:
        raise OpenAIError.invalid_request(
            f"{name} must be 1 for the llamacpp provider, not {value}",
            param=name,
            hint="send separate requests for more choices",
        )


def _no_logprobs(raw: Mapping[str, Any]) -> None:
    if raw.get("logprobs") not in (None, False):
        # llama.cpp returns them only for a model loaded with logits for every position,
        # which costs n_ctx x n_vocab floats (1.2 GB for a 150k vocabulary).
        raise OpenAIError.invalid_request(
            "logprobs are not available from the llamacpp provider",
            param="logprobs",
            hint="leave logprobs out, or serve the model with llama_cpp.server --logits_all",
        )


def _chat_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: string content, and no "developer" role."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        copy = dict(message)
        if copy.get("role") == "developer":
            copy["role"] = "system"  # OpenAI's newer name for it; templates know "system"
        content = copy.get("content")
        if content is None:
            copy["content"] = ""  # templates concatenate it; an assistant turn with tool_calls
        elif isinstance(content, list):
            texts: list[str] = []
            for j, part in enumerate(content):
                if part.get("type") != "text":
                    raise OpenAIError.invalid_request(
                        f"messages[{i}].content[{j}] is a {part.get('type')!r} part; the "
                        "llamacpp provider serves text-only models",
                        param=f"messages[{i}].content[{j}].type",
                    )
                texts.append(part["text"])
            # Parts are separate blocks of the same turn; a line break keeps words apart.
            copy["content"] = "\n".join(texts)
        out.append(copy)
    return out


def _chat_params(parsed: ChatRequest) -> dict[str, Any]:
    raw = parsed.raw
    _only_one(raw, "n")
    _no_logprobs(raw)
    params = {k: raw[k] for k in _CHAT_OPTIONS if raw.get(k) is not None}
    params["messages"] = _chat_messages(raw["messages"])
    if parsed.max_tokens is not None:
        params["max_tokens"] = parsed.max_tokens
    return params


def _completion_params(parsed: CompletionRequest) -> dict[str, Any]:
    raw = parsed.raw
    _only_one(raw, "n")
    _only_one(raw, "best_of")
    _no_logprobs(raw)
    params = {k: raw[k] for k in _COMPLETION_OPTIONS if raw.get(k) is not None}
    prompt = raw["prompt"]
    # validate_completion allows a string, token ids, or an array of either.
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
        if len(prompt) > 1:
            raise OpenAIError.invalid_request(
                f"prompt has {len(prompt)} prompts; the llamacpp provider completes one per "
                "request",
                param="prompt",
                hint="send the prompts as separate requests",
            )
        prompt = prompt[0]
    params["prompt"] = prompt
    if parsed.max_tokens is not None:
        params["max_tokens"] = parsed.max_tokens
    return params


def _logit_bias(value: Mapping[str, Any], n_vocab: int) -> dict[int, float]:
    bias: dict[int, float] = {}
    for key, weight in value.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if not 0 <= token < n_vocab:
            raise OpenAIError.invalid_request(
                f"logit_bias has the key {key!r}, which is not a token id of this model "
                f"(0 to {n_vocab - 1})",
                param="logit_bias",
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (-100 <= weight <= 100)
        ):
            raise OpenAIError.invalid_request(
                f"logit_bias[{key!r}] must be a number from -100 to 100", param="logit_bias"
            )
        bias[token] = float(weight)
    return bias


def _embedding_inputs(raw: Mapping[str, Any]) -> list[str]:
    value = raw["input"]
    inputs = [value] if isinstance(value, str) else value
    if not all(isinstance(v, str) for v in inputs):
        raise OpenAIError.invalid_request(
            "input must be text for the llamacpp provider, not token ids",
            param="input",
            hint="send the text itself",
        )
    if any(not v for v in inputs):
        raise OpenAIError.invalid_request("input must not contain empty strings", param="input")
    return cast(list[str], inputs)


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class _Stream:
    """One streamed generation as SSE events. The engine's chunk generator is advanced on a
    worker thread a batch per ``receive()``, so generation runs at the reader's pace and
    stops with it: nothing runs between reads, and no task outlives the request."""

    def __init__(
        self,
        *,
        provider: str,
        run: _Run,
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
            self._head = await _in_worker(begin, self._run.stop)
        except Exception as e:
            raise _engine_error(e, provider=self._provider, param=param) from e

    def _pull(self, window: float) -> bytes:
        """On a worker thread: the next chunks, as many as come within ``window``."""
        out: list[bytes] = []
        deadline = time.monotonic() + window
        for chunk in self._chunks:
            chunk["id"] = self._id
            chunk["model"] = self._model
            self._created = chunk.get("created", self._created)
            if self._include_usage:
                chunk["usage"] = None  # as OpenAI sends it on every chunk but the last
            out.append(encode_json(chunk))
            if time.monotonic() >= deadline:
                return b"".join(out)
        self._finished = True
        usage = self._run.usage()
        self._reply.usage = usage
        if self._include_usage:
            out.append(
                encode_json(
                    {
                        "id": self._id,
                        "object": self._object,
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": usage,
                    }
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
            return await _in_worker(partial(self._pull, STREAM_WINDOW), self._run.stop)
        except Exception as e:
            # Past the head: the client gets an error event, and the request is recorded
            # as failed.
            error = _engine_error(e, provider=self._provider, param=None)
            self._finished = True
            self._reply.failed = error.message
            return encode_json(error.body())

    def close(self) -> None:
        # Throws GeneratorExit into llama-cpp-python's generator, which ends the
        # generation there. Done inline: it runs no tokens, and the caller may be cancelled.
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


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
        self.n_threads = n_threads or _default_threads()
        self.close_grace = close_grace
        self._llm: _Engine | None = None
        self._embedder: _Engine | None = None
        self._lock = anyio.Lock()  # one generation at a time
        self._embed_lock = anyio.Lock()
        self._load_lock = anyio.Lock()  # one load at a time, so none happens twice
        self._load_error: PermanentError | None = None
        self._run: _Run | None = None  # the generation in progress, for aclose()
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

    async def _engine(self, *, embedding: bool) -> _Engine:
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
                _load_engine,
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

    async def _ready(self, *, embedding: bool) -> _Engine:
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
            params, param = _chat_params(parsed), "messages"
        else:
            params, param = _completion_params(parsed), "prompt"
        engine = await self._ready(embedding=False)
        bias = parsed.raw.get("logit_bias")
        if bias is not None:
            params["logit_bias"] = _logit_bias(bias, engine.n_vocab())
        params["model"] = parsed.model
        create = (
            engine.create_chat_completion
            if isinstance(parsed, ChatRequest)
            else engine.create_completion
        )
        async with self._lock:
            self._refuse_if_closed()
            run = _Run()
            engine.gate_run = self._run = run
            stream: _Stream | None = None
            try:
                if not parsed.stream:
                    try:
                        out = await _in_worker(partial(create, **params), run.stop)
                    except Exception as e:
                        raise _engine_error(e, provider=self.name, param=param) from e
                    out["id"] = request.request_id
                    yield json_reply(out)
                    return
                reply = Reply(status=200, content_type=_SSE, stream=True, body=OneChunk(b""))
                stream = _Stream(
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
        inputs = _embedding_inputs(raw)
        engine = await self._ready(embedding=True)
        dimensions = raw.get("dimensions")
        if dimensions is not None and dimensions != engine.n_embd():
            raise OpenAIError.invalid_request(
                f"dimensions must be {engine.n_embd()} for this model, not {dimensions}",
                param="dimensions",
                hint="leave dimensions out; llama.cpp cannot shorten embeddings",
            )
        async with self._embed_lock:
            self._refuse_if_closed()
            # No token loop to stop here: one decode per batch of inputs, quick.
            try:
                out = await anyio.to_thread.run_sync(engine.create_embedding, inputs, parsed.model)
            except Exception as e:
                raise _engine_error(e, provider=self.name, param="input") from e
        if raw.get("encoding_format") == "base64":
            for item in out["data"]:
                item["embedding"] = _base64_floats(item["embedding"])
        return json_reply(out)

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
                    await anyio.to_thread.run_sync(_check_file, self.model_path, self.name)
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

    def _take(self, *, embedding: bool) -> _Engine | None:
        if embedding:
            engine, self._embedder = self._embedder, None
        else:
            engine, self._llm = self._llm, None
        return engine
