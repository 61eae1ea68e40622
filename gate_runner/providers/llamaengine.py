"""A GGUF model opened by llama-cpp-python for the `llamacpp` backend: checking and loading
the file, and the engine's token loop, which counts tokens and stops when told to."""

from __future__ import annotations

__all__ = (
    "MAX_CTX",
    "Engine",
    "Run",
    "Stopped",
    "check_file",
    "default_threads",
    "engine_error",
    "llama_available",
    "load_engine",
)

import importlib.util
import os
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, cast

from gate_runner.errors import PermanentError
from gate_runner.wire.llamacpp import llama_error, usage
from gate_runner.wire.openai import OpenAIError

MAX_CTX = 2048
"""The context is capped: llama.cpp allocates its KV cache up front (a 7B model in f16 needs
about 1 GB at 2048 tokens), and Gate serves chat turns, not long documents. A model trained
on a shorter context gets that instead, since its output degrades past it."""

_INSTALL_HINT = "install the extra: pip install 'gate-runner[llamacpp]'"


def llama_available() -> bool:
    """Whether llama-cpp-python is installed. A lookup, not an import: importing it loads
    libllama, which a node without this provider should not pay for."""
    return importlib.util.find_spec("llama_cpp") is not None


def default_threads() -> int:
    """llama.cpp's threads for one model on this machine."""
    # llama.cpp's threads spin while they wait for each other, so on two cores a second one
    # fights the node's own event loop: the rig measured 250-800 tokens/s with two threads
    # against 2,000-4,000 with one. With more cores two threads speed a real model up and
    # still leave the node (and other engines) room.
    return 1 if (os.cpu_count() or 1) <= 2 else 2


@dataclass(slots=True, eq=False)
class Run:
    """One generation, as seen from both sides: trio sets ``stop``, the engine's token loop
    checks it and counts tokens (llama-cpp-python reports no usage in streams)."""

    stop: threading.Event = field(default_factory=threading.Event)
    prompt_tokens: int | None = None
    completion_tokens: int = 0

    def usage(self) -> dict[str, int]:
        return usage(self.prompt_tokens, self.completion_tokens)


class Stopped(Exception):
    """Raised inside the engine's token loop when its run is told to stop: the client went
    away or the backend is closing."""


class Engine(Protocol):
    """What Gate uses of a loaded model (llama_cpp.Llama, subclassed by _engine_class)."""

    gate_run: Run | None

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
        gate_run: Run | None = None

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
                    raise Stopped
                # The end-of-generation token ends the answer and is not part of it.
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    run.completion_tokens += 1
                yield token

    return GateLlama


def check_file(path: Path, provider: str) -> None:
    """Fail early and clearly on a path that cannot be a model: llama.cpp only says
    "Failed to load model from file". Raises PermanentError."""
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


def load_engine(path: Path, *, provider: str, n_threads: int, embedding: bool) -> Engine:
    """Load the model (on a worker thread: it reads the weights). Raises PermanentError."""
    check_file(path, provider)
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
    return cast(Engine, engine)


def engine_error(error: Exception, *, provider: str, param: str | None) -> OpenAIError:
    """What an exception from the engine means for the client."""
    if isinstance(error, Stopped):
        return OpenAIError.no_provider(
            f"provider {provider} stopped this generation: it is shutting down",
            hint="retry; the node may serve it from another provider",
        )
    return llama_error(error, provider=provider, param=param, max_ctx=MAX_CTX)
