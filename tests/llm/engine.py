"""Runs real llama.cpp engines on the tiny model: `llama_cpp.server` processes and in-process.

Also a pytest plugin: load it with `pytest_plugins = ("tests.llm.engine",)` to get the fixtures
`tiny_model`, `llama_server_factory`, `llama_server` and `llama_inproc`, all session-scoped.
Without llama-cpp-python installed they skip, saying how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.llm.tiny_gguf import make_tiny_model
from tests.rig import ROOT, free_port

if TYPE_CHECKING:
    import llama_cpp

__all__ = (
    "INSTALL_HINT",
    "LlamaServer",
    "LlamaServerError",
    "llama_cpp_missing",
    "llama_inproc",
    "llama_server",
    "llama_server_factory",
    "load_llama",
    "require_llama_cpp",
    "tiny_model",
)

INSTALL_HINT = (
    "run `bash scripts/llama-wheel.sh .venv` (it compiles llama.cpp once, about 7 min on 2 cores, "
    "and keeps the wheel in ~/.cache/gate-wheels)"
)
# What `python -m llama_cpp.server` imports beyond llama_cpp itself: the [server] extra.
_SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
N_CTX = 512
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A model this small gains nothing from more threads, and llama.cpp's threads spin while they
# wait for each other: with 2 threads on a 2-core machine that is busy with anything else (a
# parallel test, a build) it measured 250-800 tokens/s against 2,000-4,000 with one.
ONE_THREAD = {"n_threads": 1, "n_threads_batch": 1}


class LlamaServerError(RuntimeError):
    """Raised when a `llama_cpp.server` process exits or does not answer before its deadline;
    the message ends with the tail of the server's log."""


def llama_cpp_missing(*, server: bool = False) -> str | None:
    """Why the llama.cpp engines cannot run here, or None when they can.

    `find_spec` rather than an import, so that a test session that never uses the engines does
    not pay for loading libllama.
    """
    needed = ("llama_cpp", "gguf", *(_SERVER_MODULES if server else ()))
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"{', '.join(missing)} not installed: {INSTALL_HINT}"


def require_llama_cpp(*, server: bool = False) -> None:
    """Skip the calling test (or fixture) when llama-cpp-python is not installed.

    With GATE_REQUIRE_LLAMA=1 it fails instead, so that CI cannot go green by skipping.
    """
    reason = llama_cpp_missing(server=server)
    if reason is None:
        return
    if os.environ.get("GATE_REQUIRE_LLAMA") == "1":
        pytest.fail(f"GATE_REQUIRE_LLAMA=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def load_llama(path: Path, *, n_ctx: int = N_CTX, **kwargs: object) -> llama_cpp.Llama:
    """The model loaded in this process, as the `llamacpp` provider does (about 10 ms)."""
    from llama_cpp import Llama

    options: dict[str, object] = {"n_ctx": n_ctx, "verbose": False, **ONE_THREAD}
    return Llama(model_path=str(path), **(options | kwargs))


class LlamaServer:
    """One `python -m llama_cpp.server` process on 127.0.0.1, stopped by its pid."""

    def __init__(
        self,
        model: Path,
        *,
        log_path: Path,
        n_ctx: int = N_CTX,
        embedding: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.log_path = log_path
        self.n_ctx = n_ctx
        self.embedding = embedding
        self.extra_args = extra_args
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, for `openai.OpenAI(base_url=...)`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LlamaServerError("the server is not started")
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--embedding",
            str(self.embedding).lower(),
            *self.extra_args,
        ]

    def start(self, *, timeout: float = READY_TIMEOUT) -> float:
        """Start the server and wait until it answers; returns the seconds that took.

        The port is picked free just before the start, so another process can take it in
        between; that start is retried on a new port.
        """
        for attempt in range(3):
            self.port = free_port()
            started = time.monotonic()
            with self.log_path.open("ab") as log:
                log.write(f"$ {' '.join(self.command())}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            try:
                self._wait_ready(deadline=started + timeout)
            except LlamaServerError:
                self.stop()
                if attempt < 2 and "address already in use" in self.log_tail().lower():
                    continue
                raise
            return time.monotonic() - started
        raise AssertionError("unreachable")

    def _wait_ready(self, *, deadline: float) -> None:
        # The server has no /health; /v1/models answers once the model is loaded.
        url = f"{self.base_url}/models"
        with httpx.Client(timeout=1.0) as client:
            while True:
                assert self.proc is not None
                code = self.proc.poll()
                if code is not None:
                    raise LlamaServerError(
                        f"llama_cpp.server exited with {code} before answering on port "
                        f"{self.port}; its log ({self.log_path}):\n{self.log_tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LlamaServerError(
                        f"llama_cpp.server did not answer GET {url} in time; raise the start "
                        f"timeout if this machine is slow. Its log ({self.log_path}):\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down cleanly on it), then SIGKILL after STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GGUF, written once per session (in well under a second)."""
    require_llama_cpp()
    return make_tiny_model(tmp_path_factory.mktemp("llm") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server_factory(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LlamaServer]]:
    """Starts `llama_cpp.server` processes on the tiny model (or `model=`) and stops them all at
    the end of the session."""
    require_llama_cpp(server=True)
    logs = tmp_path_factory.mktemp("llama-server")
    started: list[LlamaServer] = []

    def start(
        *,
        model: Path | None = None,
        n_ctx: int = N_CTX,
        embedding: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> LlamaServer:
        server = LlamaServer(
            model or tiny_model,
            log_path=logs / f"server-{len(started)}.log",
            n_ctx=n_ctx,
            embedding=embedding,
            extra_args=extra_args,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def llama_server(llama_server_factory: Callable[..., LlamaServer]) -> LlamaServer:
    """One shared server on the tiny model, chat and completions only (no embeddings)."""
    return llama_server_factory()


@pytest.fixture(scope="session")
def llama_inproc(tiny_model: Path) -> llama_cpp.Llama:
    """The tiny model loaded in this process."""
    return load_llama(tiny_model)
