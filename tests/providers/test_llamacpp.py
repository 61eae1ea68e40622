"""The in-process `llamacpp` backend on the real tiny GGUF model (tests/llm): chat, completions
and embeddings, streamed or not, and what happens when the client goes away or the backend
closes under a running generation."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from gate_runner.errors import PermanentError
from gate_runner.providers.base import Operation, Reply, UpstreamRequest
from gate_runner.providers.llamacpp import LlamaCppBackend
from gate_runner.wire.openai import (
    OpenAIError,
    validate_chat,
    validate_completion,
    validate_embeddings,
)
from gate_runner.wire.sse import SSEParser
from tests.rig import ROOT

pytestmark = pytest.mark.anyio

MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "Say something."},
]
# Well over the tiny model's context of 1024 tokens.
TOO_LONG = "word " * 1200
_VALIDATE: dict[Operation, Callable[[object], Any]] = {
    "chat": validate_chat,
    "completions": validate_completion,
    "embeddings": validate_embeddings,
}


@pytest.fixture
async def backend(tiny_model: Path) -> AsyncIterator[LlamaCppBackend]:
    b = LlamaCppBackend(name="local", model_path=tiny_model)
    yield b
    await b.aclose()


def make_request(op: Operation, **body: Any) -> UpstreamRequest:
    body.setdefault("model", "tiny")
    if op == "chat":
        body.setdefault("messages", MESSAGES)
    elif op == "completions":
        body.setdefault("prompt", "The node")
    return UpstreamRequest(
        op=op,
        parsed=_VALIDATE[op](body),
        raw_body=json.dumps(body).encode(),
        request_id="chatcmpl-test",
    )


async def read_body(reply: Reply) -> bytes:
    chunks = []
    while chunk := await reply.body.receive():
        chunks.append(chunk)
    return b"".join(chunks)


async def call(backend: LlamaCppBackend, op: Operation, **body: Any) -> tuple[Reply, Any]:
    """One non-streamed request: the reply's head and its JSON body."""
    async with backend.open(make_request(op, **body)) as reply:
        data = await read_body(reply)
    assert reply.content_length == len(data)
    return reply, json.loads(data)


async def stream(backend: LlamaCppBackend, op: Operation, **body: Any) -> tuple[Reply, list[str]]:
    """One streamed request: the reply and the data of its SSE events."""
    async with backend.open(make_request(op, stream=True, **body)) as reply:
        data = await read_body(reply)
    assert reply.stream and reply.content_type == b"text/event-stream"
    return reply, [event.data for event in SSEParser().feed(data)]


async def refused(backend: LlamaCppBackend, op: Operation, **body: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        async with backend.open(make_request(op, **body)):
            pytest.fail("open() answered a request it should refuse")
    return caught.value


def threads_in_llama() -> list[str]:
    """Names of the threads now running llama-cpp-python's code (idle workers wait in trio)."""
    import threading

    import llama_cpp

    root = str(Path(llama_cpp.__file__).parent)
    names = {t.ident: t.name for t in threading.enumerate()}
    busy = []
    for ident, frame in sys._current_frames().items():
        f: Any = frame
        while f is not None:
            if f.f_code.co_filename.startswith(root):
                busy.append(names.get(ident, str(ident)))
                break
            f = f.f_back
    return busy


def test_importing_the_module_does_not_load_llama_cpp() -> None:
    code = (
        "import importlib.util, sys, gate_runner.providers.llamacpp as m; "
        "assert m.llama_available() == (importlib.util.find_spec('llama_cpp') is not None); "
        "assert 'llama_cpp' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- chat -----------------------------------------------------------------------------------


async def test_chat_runs_to_max_tokens(backend: LlamaCppBackend) -> None:
    reply, body = await call(backend, "chat", max_tokens=8)
    assert (reply.status, reply.content_type, reply.stream) == (200, b"application/json", False)
    assert body["id"] == "chatcmpl-test"
    assert body["model"] == "tiny"
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert body["usage"]["completion_tokens"] == 8
    assert body["usage"]["prompt_tokens"] > 10  # ChatML wraps both messages
    assert reply.usage == body["usage"]


async def test_max_completion_tokens_wins_over_max_tokens(backend: LlamaCppBackend) -> None:
    _, body = await call(backend, "chat", max_tokens=20, max_completion_tokens=5)
    assert body["usage"]["completion_tokens"] == 5


async def test_chat_streams_sse_with_a_usage_chunk(backend: LlamaCppBackend) -> None:
    _, plain = await call(backend, "chat", max_tokens=16)
    reply, events = await stream(
        backend, "chat", max_tokens=16, stream_options={"include_usage": True}
    )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {"chatcmpl-test"}
    assert {c["model"] for c in chunks} == {"tiny"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert content.strip()
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    # As OpenAI does: usage null on every chunk, then one with no choices and the usage.
    assert all(c["usage"] is None for c in chunks[:-1])
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage == {
        "prompt_tokens": plain["usage"]["prompt_tokens"],
        "completion_tokens": 16,
        "total_tokens": plain["usage"]["prompt_tokens"] + 16,
    }
    assert reply.usage == usage
    assert reply.failed is None


async def test_chat_stream_without_include_usage(backend: LlamaCppBackend) -> None:
    reply, events = await stream(backend, "chat", max_tokens=4)
    assert events[-1] == "[DONE]"
    assert not any("usage" in json.loads(e) for e in events[:-1])
    # The API still records the usage.
    assert reply.usage is not None and reply.usage["completion_tokens"] == 4


async def test_sampling_parameters_reach_the_engine(backend: LlamaCppBackend) -> None:
    # In the tiny model's byte-level vocabulary, token 65 is "A".
    _, body = await call(backend, "chat", max_tokens=8, logit_bias={"65": 100})
    assert body["choices"][0]["message"]["content"] == "A" * 8
    _, body = await call(backend, "chat", max_tokens=8, logit_bias={"65": 100}, stop=["AAA"])
    assert body["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "stop"
    seeded = [
        (await call(backend, "chat", max_tokens=12, temperature=1.5, seed=7))[1] for _ in "ab"
    ]
    assert seeded[0]["choices"][0] == seeded[1]["choices"][0]


async def test_tools_reach_the_engine(backend: LlamaCppBackend) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    _, body = await call(
        backend,
        "chat",
        max_tokens=24,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"


async def test_content_parts_and_developer_role_become_what_templates_expect(
    backend: LlamaCppBackend,
) -> None:
    _, plain = await call(backend, "chat", max_tokens=1)
    _, parts = await call(
        backend,
        "chat",
        max_tokens=1,
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "You are a test."}]},
            {"role": "user", "content": [{"type": "text", "text": "Say something."}]},
        ],
    )
    # The same prompt, token for token.
    assert parts["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]


# -- completions and embeddings -------------------------------------------------------------


async def test_completions(backend: LlamaCppBackend) -> None:
    reply, body = await call(backend, "completions", max_tokens=8)
    assert body["object"] == "text_completion"
    assert body["id"] == "chatcmpl-test"
    assert body["model"] == "tiny"
    assert body["choices"][0]["text"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 8
    assert reply.usage == body["usage"]

    _, tokens = await call(backend, "completions", max_tokens=4, prompt=[[84, 104, 101]])
    assert tokens["usage"]["prompt_tokens"] == 3


async def test_completions_stream(backend: LlamaCppBackend) -> None:
    _, plain = await call(backend, "completions", max_tokens=1)
    reply, events = await stream(
        backend, "completions", max_tokens=10, stream_options={"include_usage": True}
    )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 10
    assert chunks[-1]["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    assert reply.usage == chunks[-1]["usage"]


async def test_embeddings(backend: LlamaCppBackend) -> None:
    reply, body = await call(backend, "embeddings", input=["hello", "world"])
    assert body["object"] == "list"
    assert body["model"] == "tiny"
    assert [d["index"] for d in body["data"]] == [0, 1]
    # The model pools by mean: one vector of the hidden size per input.
    vectors = [d["embedding"] for d in body["data"]]
    assert [len(v) for v in vectors] == [64, 64]
    assert vectors[0] != vectors[1]
    assert body["usage"]["prompt_tokens"] > 0
    assert reply.usage == body["usage"]

    # base64 is the vector as little-endian float32 (the engine's own precision).
    _, single = await call(backend, "embeddings", input="hello")
    _, encoded = await call(backend, "embeddings", input="hello", encoding_format="base64")
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack("<64f", raw)) == single["data"][0]["embedding"]


async def test_embeddings_do_not_wait_for_a_generation(backend: LlamaCppBackend) -> None:
    await call(backend, "embeddings", input="warm")
    async with backend.open(make_request("chat", max_tokens=2000, stream=True)) as reply:
        await reply.body.receive()  # the generation holds the model now
        with anyio.fail_after(5):
            _, body = await call(backend, "embeddings", input="hello")
    assert len(body["data"][0]["embedding"]) == 64


# -- refused requests -----------------------------------------------------------------------

REFUSED: list[tuple[Operation, dict[str, Any], str | None]] = [
    ("chat", {"n": 2}, "n"),
    ("completions", {"n": 3}, "n"),
    ("completions", {"best_of": 2}, "best_of"),
    ("chat", {"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ("completions", {"logprobs": 2}, "logprobs"),
    ("completions", {"prompt": ["one", "two"]}, "prompt"),
    (
        "chat",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                }
            ]
        },
        "messages[0].content[0].type",
    ),
    ("chat", {"logit_bias": {"99999": 5}}, "logit_bias"),
    ("chat", {"logit_bias": {"cat": 5}}, "logit_bias"),
    ("completions", {"logit_bias": {"65": 101}}, "logit_bias"),
    ("embeddings", {"input": [[1, 2, 3]]}, "input"),
    ("embeddings", {"input": ["ok", ""]}, "input"),
    ("embeddings", {"input": "hello", "dimensions": 32}, "dimensions"),
]


@pytest.mark.parametrize(("op", "body", "param"), REFUSED)
async def test_unsupported_requests_are_400(
    backend: LlamaCppBackend, op: Operation, body: dict[str, Any], param: str | None
) -> None:
    extra = {} if op == "embeddings" else {"max_tokens": 4}
    error = await refused(backend, op, **extra, **body)
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("op", "body", "param"),
    [
        ("chat", {"messages": [{"role": "user", "content": TOO_LONG}]}, "messages"),
        ("completions", {"prompt": TOO_LONG}, "prompt"),
    ],
)
async def test_context_overflow_is_400_before_the_head(
    backend: LlamaCppBackend, op: Operation, body: dict[str, Any], param: str, streamed: bool
) -> None:
    error = await refused(backend, op, max_tokens=4, stream=streamed, **body)
    assert (error.status, error.code, error.param) == (400, "context_length_exceeded", param)
    assert "context window of 1024" in str(error)
    # The refusal left the model usable.
    _, ok = await call(backend, op, max_tokens=2)
    assert ok["usage"]["completion_tokens"] == 2


# -- the client going away, and queueing ----------------------------------------------------


@pytest.mark.parametrize("how", ["cancelled", "left"])
async def test_a_stream_abandoned_midway_stops_generating(
    backend: LlamaCppBackend, how: str
) -> None:
    """The API cancels the task reading the body (or just leaves the block): the engine
    stops at once, the lock is free and the next request is served."""
    request = make_request("chat", max_tokens=2000, stream=True)
    received = 0
    abandoned = 0.0
    with anyio.CancelScope() as scope:
        async with backend.open(request) as reply:
            while await reply.body.receive():
                received += 1
                if received == 3:
                    abandoned = time.perf_counter()
                    if how == "left":
                        break
                    # Cancelled while the next batch is being generated on the worker thread.
                    scope.deadline = anyio.current_time() + 0.005
    left_after = time.perf_counter() - abandoned
    assert received >= 3
    assert scope.cancelled_caught == (how == "cancelled")
    assert left_after < 0.5
    assert threads_in_llama() == []
    with anyio.fail_after(2):
        _, body = await call(backend, "chat", max_tokens=8)
    assert body["usage"]["completion_tokens"] == 8


async def test_a_cancelled_unstreamed_generation_stops_midway(backend: LlamaCppBackend) -> None:
    # Calibrate on this machine: the whole generation (to the context's end) uninterrupted.
    started = time.perf_counter()
    _, body = await call(backend, "chat", max_tokens=2000)
    whole = time.perf_counter() - started
    assert body["usage"]["completion_tokens"] > 900  # the context is 1024 tokens

    started = time.perf_counter()
    with anyio.move_on_after(whole / 10) as scope:
        await call(backend, "chat", max_tokens=2000)
    took = time.perf_counter() - started
    assert scope.cancelled_caught
    # Without the stop it would run to the end: the worker thread cannot be interrupted.
    assert took < whole / 2, f"{took:.3f}s of {whole:.3f}s"
    assert threads_in_llama() == []


async def test_concurrent_requests_take_turns(backend: LlamaCppBackend) -> None:
    spans: dict[str, tuple[float, float]] = {}
    results: dict[str, Reply] = {}

    async def one(name: str) -> None:
        async with backend.open(make_request("chat", max_tokens=64, stream=True)) as reply:
            head = time.perf_counter()
            data = await read_body(reply)
            spans[name] = (head, time.perf_counter())
        assert data.endswith(b"data: [DONE]\n\n")
        results[name] = reply

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "a")
        tg.start_soon(one, "b")
    (a_start, a_end), (b_start, b_end) = sorted(spans.values())
    assert a_end <= b_start, "the second generation started before the first ended"
    for reply in results.values():
        assert reply.usage is not None and reply.usage["completion_tokens"] == 64


# -- loading, models, health and closing ----------------------------------------------------


async def test_missing_model_file(tmp_path: Path, tiny_model: Path) -> None:
    path = tmp_path / "absent.gguf"
    backend = LlamaCppBackend(name="local", model_path=path)
    with pytest.raises(PermanentError) as caught:
        await backend.load()
    assert str(path) in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert caught.value.hint
    health = await backend.check_health()
    assert health.state == "Unhealthy" and health.error and str(path) in health.error

    # A request gets a 503, which lets the router try another provider.
    error = await refused(backend, "chat", max_tokens=4)
    assert (error.status, error.code) == (503, "model_load_failed")
    assert isinstance(error.__cause__, PermanentError)

    # Once the file is there, the next request loads it.
    await anyio.Path(path).write_bytes(await anyio.Path(tiny_model).read_bytes())
    _, body = await call(backend, "chat", max_tokens=2)
    assert body["usage"]["completion_tokens"] == 2
    assert (await backend.check_health()).state == "Healthy"
    await backend.aclose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all", "is not a GGUF file"),
        (None, "llama.cpp cannot load"),  # the tiny model, cut short
    ],
)
async def test_corrupt_model_file(
    tmp_path: Path, tiny_model: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "broken.gguf"
    if content is None:
        content = (await anyio.Path(tiny_model).read_bytes())[:100_000]
    await anyio.Path(path).write_bytes(content)
    backend = LlamaCppBackend(name="local", model_path=path)
    with pytest.raises(PermanentError, match=message) as caught:
        await backend.load()
    assert str(path) in str(caught.value)
    assert caught.value.hint
    health = await backend.check_health()
    assert health.state == "Unhealthy" and health.error and message in health.error


async def test_fetch_models_names_the_file_without_loading(backend: LlamaCppBackend) -> None:
    models = await backend.fetch_models()
    assert [(m.id, m.owned_by) for m in models] == [("tiny", "local")]
    assert models[0].created > 0
    assert not backend.loaded


async def test_health_before_and_after_load(backend: LlamaCppBackend) -> None:
    before = await backend.check_health()
    assert before.state == "Unknown"
    assert not backend.loaded
    await backend.load()
    await backend.load()  # loading twice is a no-op
    after = await backend.check_health()
    assert after.state == "Healthy"
    assert after.latency_ms is not None
    assert after.version and after.version.startswith("llama-cpp-python ")


async def test_aclose_frees_the_model_and_refuses_new_requests(backend: LlamaCppBackend) -> None:
    await call(backend, "chat", max_tokens=2)
    await call(backend, "embeddings", input="hello")
    await backend.aclose()
    assert not backend.loaded
    assert (await backend.check_health()).state == "Unhealthy"
    error = await refused(backend, "chat", max_tokens=2)
    assert error.status == 503
    await backend.aclose()  # twice is harmless


async def test_aclose_lets_a_running_generation_finish(backend: LlamaCppBackend) -> None:
    ended: list[float] = []
    head = anyio.Event()

    async def slow_reader() -> None:
        async with backend.open(make_request("chat", max_tokens=200, stream=True)) as reply:
            head.set()
            chunks = []
            while chunk := await reply.body.receive():
                chunks.append(chunk)
                await anyio.sleep(0.01)
        assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
        assert reply.usage is not None and reply.usage["completion_tokens"] == 200
        ended.append(time.perf_counter())

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_reader)
        await head.wait()
        await backend.aclose()
        closed = time.perf_counter()
    assert ended and ended[0] <= closed
    assert not backend.loaded


async def test_aclose_stops_a_generation_that_outlasts_the_grace(tiny_model: Path) -> None:
    backend = LlamaCppBackend(name="local", model_path=tiny_model, close_grace=0.1)
    head = anyio.Event()
    replies: list[Reply] = []
    tail: list[bytes] = []

    async def slow_reader() -> None:
        async with backend.open(make_request("chat", max_tokens=2000, stream=True)) as reply:
            replies.append(reply)
            head.set()
            while chunk := await reply.body.receive():
                tail.append(chunk)
                await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_reader)
        await head.wait()
        started = time.perf_counter()
        await backend.aclose()
        assert time.perf_counter() - started < 1
    # The client got an error event instead of [DONE], and the request counts as failed.
    assert replies[0].failed and "shutting down" in replies[0].failed
    last = SSEParser().feed(tail[-1])[-1].json()
    assert isinstance(last, dict) and last["error"]["code"] == "no_provider_available"
    assert threads_in_llama() == []


async def test_throughput(
    backend: LlamaCppBackend, record_property: Callable[[str, object], None]
) -> None:
    """Tokens/s through the backend, measured and reported (-rP), not asserted."""
    n = 256
    await call(backend, "completions", max_tokens=4)
    started = time.perf_counter()
    _, body = await call(backend, "completions", max_tokens=n)
    plain = n / (time.perf_counter() - started)
    assert body["usage"]["completion_tokens"] == n
    started = time.perf_counter()
    reply, _ = await stream(backend, "completions", max_tokens=n)
    streamed = n / (time.perf_counter() - started)
    assert reply.usage is not None and reply.usage["completion_tokens"] == n
    record_property("llamacpp_tokens_per_s", round(plain))
    record_property("llamacpp_stream_tokens_per_s", round(streamed))
    print(f"llamacpp backend, {n} tokens: {plain:.0f} tokens/s, streamed {streamed:.0f}")
