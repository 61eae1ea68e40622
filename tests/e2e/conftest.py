from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.llm.engine import LlamaServer
from tests.rig import ServerProcess


@pytest.fixture(scope="session")
def engine(llama_server_factory: Callable[..., LlamaServer]) -> LlamaServer:
    """The real llama.cpp server on the tiny model, as an `openai` provider would see it."""
    return llama_server_factory(embedding=True, extra_args=["--model_alias", "tiny"])


@pytest.fixture(scope="session")
def ollama() -> Iterator[ServerProcess]:
    """The recorded-contract Ollama server (no Ollama binary is installable here)."""
    server = ServerProcess(
        # error- and dying- models misbehave mid-stream (tests/fakes/ollama.py); listing
        # them makes the node route to them.
        "tests.fakes.ollama",
        "--models",
        "llama3:8b,qwen2:0.5b,error-model:latest,dying-model:latest",
        "--delay",
        "0.05",
    )
    yield server
    server.stop()


@pytest.fixture
def bad_upstream() -> Iterator[ServerProcess]:
    server = ServerProcess("tests.fakes.badhttp")
    yield server
    server.stop()
