"""The rig's inference engines answer real OpenAI requests: `llama_cpp.server` and in-process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.llm.tiny_gguf import make_tiny_model

if TYPE_CHECKING:
    from llama_cpp import Llama

    from tests.llm.engine import LlamaServer

# Loaded here as well as from tests/conftest.py so that this file also runs on its own; pytest
# registers a plugin once however often it is named. Not imported above except for typing: a
# plugin imported before pytest sees it cannot have its asserts rewritten (a warning, so an error).
pytest_plugins = ("tests.llm.engine",)

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "Say something."},
]


@pytest.fixture(scope="module")
def client(llama_server: LlamaServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llama_server.base_url, api_key="unused", max_retries=0) as c:
        yield c


def _model_id(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def test_tiny_model_is_small_and_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    again = make_tiny_model(tmp_path / "again.gguf")
    other = make_tiny_model(tmp_path / "other.gguf", seed=1)
    assert again.read_bytes() == tiny_model.read_bytes()
    assert other.read_bytes() != tiny_model.read_bytes()
    assert 300_000 < tiny_model.stat().st_size < 800_000
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was left behind"


def test_models_lists_the_served_file(client: openai.OpenAI, llama_server: LlamaServer) -> None:
    models = client.models.list().data
    # Without --model_alias the server names the model by the path it was given.
    assert [m.id for m in models] == [str(llama_server.model)]


def test_chat_runs_to_max_tokens(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=_model_id(client), messages=MESSAGES, max_tokens=16)
    choice = resp.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 16
    # ChatML wraps both messages, so the prompt is longer than their text's byte tokens alone.
    assert resp.usage.prompt_tokens > 10


def test_chat_streams_a_chunk_per_token(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=_model_id(client), messages=MESSAGES, max_tokens=16, stream=True
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    content = [d for d in deltas if d]
    # Every sampled token is printable text, so each of the 16 arrives as its own chunk.
    assert len(content) == 16
    assert "".join(content).strip()
    assert chunks[-1].choices[0].finish_reason == "length"
    # Its streams carry no usage (DESIGN.md section 12).
    assert all(c.usage is None for c in chunks)


def test_completions(client: openai.OpenAI) -> None:
    resp = client.completions.create(model=_model_id(client), prompt="The node", max_tokens=16)
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].text
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 16


def test_embeddings_need_the_embedding_flag(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="embedding=True"):
        client.embeddings.create(model=_model_id(client), input="hello")


def test_embeddings_with_the_flag(llama_server_factory: Callable[..., LlamaServer]) -> None:
    server = llama_server_factory(embedding=True)
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:
        resp = c.embeddings.create(model=_model_id(c), input=["hello", "world"])
    assert [d.index for d in resp.data] == [0, 1]
    # The model's pooling type is mean, so each input is one vector of the hidden size.
    assert [len(d.embedding) for d in resp.data] == [64, 64]
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens > 0


def test_in_process_chat(llama_inproc: Llama) -> None:
    resp = llama_inproc.create_chat_completion(messages=MESSAGES, max_tokens=16)
    assert not isinstance(resp, Iterator)
    assert resp["choices"][0]["finish_reason"] == "length"
    assert resp["choices"][0]["message"]["content"]
    assert resp["usage"]["completion_tokens"] == 16


def test_throughput(
    client: openai.OpenAI, llama_inproc: Llama, record_property: Callable[[str, object], None]
) -> None:
    """Both engines make hundreds of tokens/s; measured and reported (-rP), not asserted."""
    n = 256
    llama_inproc.create_completion("warm", max_tokens=4)
    start = time.perf_counter()
    local = llama_inproc.create_completion("The node", max_tokens=n)
    inproc_rate = n / (time.perf_counter() - start)
    assert not isinstance(local, Iterator)
    assert local["usage"]["completion_tokens"] == n

    model = _model_id(client)
    start = time.perf_counter()
    remote = client.completions.create(model=model, prompt="The node", max_tokens=n)
    server_rate = n / (time.perf_counter() - start)
    assert remote.usage is not None
    assert remote.usage.completion_tokens == n

    record_property("inproc_tokens_per_s", round(inproc_rate))
    record_property("server_tokens_per_s", round(server_rate))
    print(f"tokens/s for {n} tokens: in-process {inproc_rate:.0f}, server {server_rate:.0f}")
