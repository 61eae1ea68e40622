"""The fake Ollama server, run for real on loopback: its answers have the wire shapes of
Ollama's source (commit fb30760), its fault modes fail the way they say, and its real
streams translate into chunks that the ``openai`` package's own types accept."""

from __future__ import annotations

import hashlib
import json
import math
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion import Completion

from gate_runner.wire.ollama import (
    OllamaChatStream,
    OllamaGenerateStream,
    chat_to_ollama,
    completion_to_ollama,
    embeddings_to_ollama,
    ollama_chat_to_openai,
    ollama_embed_to_openai,
    ollama_error,
    ollama_generate_to_openai,
    parse_version,
    tags_to_models,
)
from gate_runner.wire.openai import (
    OpenAIError,
    validate_chat,
    validate_completion,
    validate_embeddings,
)
from gate_runner.wire.sse import DONE, SSEParser
from tests.fakes import ollama as fake
from tests.rig import ROOT

DELAY = 0.05
STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.ollama",
            "--port",
            "0",
            "--models",
            "llama3.2,all-minilm:latest,think-qwen3:latest",
            "--delay",
            str(DELAY),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline().decode() if ready else ""
        assert line.startswith("listening on http://127.0.0.1:"), (
            line,
            proc.poll() is not None and proc.stderr.read().decode(),
        )
        yield line.split()[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def chat_body(
    model: str = "llama3.2", text: str = "the quick brown fox", **extra: Any
) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


# --- documented shapes ---------------------------------------------------------------------


def test_root_and_version(client: httpx.Client) -> None:
    assert client.get("/").text == "Ollama is running"
    r = client.get("/api/version")
    assert r.status_code == 200 and r.json() == {"version": fake.VERSION}
    assert parse_version(r.json()) == fake.VERSION
    # The fake answers logprobs, which Ollama has only from 0.12.11 on: it must say so.
    release = tuple(int(n) for n in fake.VERSION.split("-")[0].split("."))
    assert release >= (0, 12, 11)


def test_tags(client: httpx.Client) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == [
        "llama3.2:latest",
        "all-minilm:latest",
        "think-qwen3:latest",
    ]
    for m in models:
        assert m["model"] == m["name"]
        assert isinstance(m["size"], int)
        assert len(m["digest"]) == 64 and int(m["digest"], 16) >= 0
        assert {"format", "family", "parameter_size", "quantization_level"} <= set(m["details"])
        datetime.fromisoformat(m["modified_at"])
    listed = tags_to_models({"models": models}, owned_by="ollama")
    created = int(datetime.fromisoformat(fake.MODIFIED_AT).timestamp())
    assert listed[0] == {
        "id": "llama3.2:latest",
        "object": "model",
        "created": created,
        "owned_by": "ollama",
    }


def test_chat_streams_by_default(client: httpx.Client) -> None:
    out = lines(client.post("/api/chat", json=chat_body()))
    *pieces, last = out
    for line in pieces:
        assert set(line) == {"model", "created_at", "message", "done"}
        assert line["done"] is False and line["message"]["role"] == "assistant"
        datetime.fromisoformat(line["created_at"])
    assert "".join(p["message"]["content"] for p in pieces) == "the quick brown fox"
    assert last["done"] is True and last["done_reason"] == "stop"
    assert all(isinstance(last[k], int) for k in STATS)
    assert last["eval_count"] == 4 and last["prompt_eval_count"] == 4


def test_chat_num_predict_cuts_with_length(client: httpx.Client) -> None:
    out = lines(client.post("/api/chat", json=chat_body(options={"num_predict": 2})))
    assert "".join(p["message"]["content"] for p in out) == "the quick"
    assert (out[-1]["done_reason"], out[-1]["eval_count"]) == ("length", 2)


def test_chat_without_stream(client: httpx.Client) -> None:
    r = client.post("/api/chat", json=chat_body(stream=False))
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["message"] == {"role": "assistant", "content": "the quick brown fox"}
    assert body["done"] is True and body["done_reason"] == "stop"
    assert all(isinstance(body[k], int) for k in STATS)


def test_chat_empty_messages_loads_the_model(client: httpx.Client) -> None:
    body = client.post("/api/chat", json={"model": "llama3.2", "messages": []}).json()
    assert (body["done"], body["done_reason"]) == (True, "load")


def test_unknown_model_is_404(client: httpx.Client) -> None:
    r = client.post("/api/chat", json=chat_body(model="nope"))
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope' not found"}  # ChatHandler's words
    error = ollama_error(r.status_code, r.content, model="nope")
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"messages": []}', 400),
    ],
)
def test_bad_requests_are_400_with_an_error(client: httpx.Client, body: bytes, status: int) -> None:
    r = client.post("/api/chat", content=body)
    assert r.status_code == status and isinstance(r.json()["error"], str)


def test_generate(client: httpx.Client) -> None:
    out = lines(client.post("/api/generate", json={"model": "llama3.2", "prompt": "why is sky"}))
    assert "".join(line["response"] for line in out) == "why is sky"
    assert out[-1]["done"] is True and isinstance(out[-1]["context"], list)
    whole = client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": "a b c", "stream": False}
    ).json()
    assert whole["response"] == "a b c" and whole["done_reason"] == "stop"


def test_embed(client: httpx.Client) -> None:
    r = client.post("/api/embed", json={"model": "all-minilm", "input": ["why is", "the sky"]})
    body = r.json()
    assert body["model"] == "all-minilm" and body["prompt_eval_count"] == 4
    assert len(body["embeddings"]) == 2
    for vector in body["embeddings"]:
        assert len(vector) == fake.EMBED_DIMS
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, abs_tol=1e-4)
    again = client.post("/api/embed", json={"model": "all-minilm", "input": "why is"}).json()
    assert again["embeddings"][0] == body["embeddings"][0]  # deterministic


# --- through the translation, checked with the openai package's own types ------------------


def translate_stream(
    client: httpx.Client,
    path: str,
    body: dict[str, Any],
    stream: OllamaChatStream | OllamaGenerateStream,
) -> tuple[list[bytes], BaseException | None]:
    events: list[bytes] = []
    failure: BaseException | None = None
    with client.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        try:
            for chunk in r.iter_raw():
                events.extend(stream.feed(chunk))
        except httpx.RemoteProtocolError as e:  # the provider dropped the connection
            failure = e
    events.extend(stream.close())
    return events, failure


def sse_data(events: list[bytes]) -> list[Any]:
    parser = SSEParser()
    out: list[Any] = []
    for event in parser.feed(b"".join(events)):
        out.append(event.data if event.data == "[DONE]" else json.loads(event.data))
    return out


def test_real_chat_stream_becomes_valid_openai_chunks(client: httpx.Client) -> None:
    req = validate_chat(
        chat_body(stream=True, stream_options={"include_usage": True}, max_tokens=3)
    )
    stream = OllamaChatStream(
        id="chatcmpl-1", created=int(time.time()), model=req.model, include_usage=True
    )
    events, failure = translate_stream(client, "/api/chat", chat_to_ollama(req.raw), stream)
    assert failure is None and events[-1] == DONE
    *chunks, done = sse_data(events)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert text == "the quick brown"
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "length"
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    assert parsed[-1].usage.completion_tokens == 3 and parsed[-1].usage.prompt_tokens == 4
    assert stream.usage == parsed[-1].usage.model_dump(exclude_none=True)


def test_real_chat_answer_becomes_a_valid_chat_completion(client: httpx.Client) -> None:
    req = validate_chat(chat_body())
    resp = client.post("/api/chat", json=chat_to_ollama(req.raw)).json()
    out = ChatCompletion.model_validate(
        ollama_chat_to_openai(resp, id="chatcmpl-2", created=0, model=req.model)
    )
    assert out.choices[0].message.content == "the quick brown fox"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.total_tokens == 8


def test_real_tool_call_round_trip(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    req = validate_chat(chat_body(text="cats", tools=tools))
    resp = client.post("/api/chat", json=chat_to_ollama(req.raw)).json()
    out = ChatCompletion.model_validate(
        ollama_chat_to_openai(resp, id="chatcmpl-3", created=0, model=req.model)
    )
    [call] = out.choices[0].message.tool_calls or []
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": "cats"}
    assert out.choices[0].finish_reason == "tool_calls"


def test_real_completion_stream(client: httpx.Client) -> None:
    req = validate_completion({"model": "llama3.2", "prompt": "one two", "stream": True})
    stream = OllamaGenerateStream(id="cmpl-1", created=0, model=req.model)
    events, failure = translate_stream(
        client, "/api/generate", completion_to_ollama(req.raw), stream
    )
    assert failure is None
    *chunks, done = sse_data(events)
    assert done == "[DONE]"
    # The package's Completion type wants a finish_reason, but streams send null until the
    # last chunk (the package itself builds stream chunks without validating).
    assert [c["choices"][0]["finish_reason"] for c in chunks][:-1] == [None] * (len(chunks) - 1)
    for c in chunks:
        c["choices"][0]["finish_reason"] = c["choices"][0]["finish_reason"] or "stop"
    parsed = [Completion.model_validate(c) for c in chunks]
    assert "".join(c.choices[0].text for c in parsed) == "one two"


def test_real_embeddings(client: httpx.Client) -> None:
    req = validate_embeddings({"model": "all-minilm", "input": ["a", "b c"]})
    resp = client.post("/api/embed", json=embeddings_to_ollama(req.raw)).json()
    out = CreateEmbeddingResponse.model_validate(ollama_embed_to_openai(resp, model=req.model))
    assert [d.index for d in out.data] == [0, 1]
    assert out.usage.prompt_tokens == 3


# --- what newer Ollama sends and refuses (fb30760) -----------------------------------------


def test_tool_calls_have_ids_and_cut_calls_say_length(client: httpx.Client) -> None:
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {}}}
        for name in ("lookup", "fetch")
    ]
    [line] = lines(client.post("/api/chat", json=chat_body(text="cats", tools=tools[:1])))[:1]
    [call] = line["message"]["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])  # toolCallId in server/routes.go
    assert call["function"] == {"index": 0, "name": "lookup", "arguments": {"text": "cats"}}

    # Room for the first call (2 tokens) but not the second: a turn cut inside a call.
    req = validate_chat(chat_body(text="cats", tools=tools, max_tokens=3))
    resp = client.post("/api/chat", json=chat_to_ollama(req.raw)).json()
    assert resp["done_reason"] == "length" and len(resp["message"]["tool_calls"]) == 1
    out = ChatCompletion.model_validate(
        ollama_chat_to_openai(resp, id="chatcmpl-4", created=0, model=req.model)
    )
    assert out.choices[0].finish_reason == "length"
    [kept] = out.choices[0].message.tool_calls or []
    assert kept.id == call["id"]  # Ollama's id, not one made up by Gate


def test_thinking_model_thinks_unless_told_not_to(client: httpx.Client) -> None:
    model = "think-qwen3"
    pieces = lines(client.post("/api/chat", json=chat_body(model=model, text="a b")))
    assert "".join(p["message"].get("thinking", "") for p in pieces) == "Thinking about: a b"
    assert "".join(p["message"]["content"] for p in pieces) == "a b"
    whole = client.post("/api/chat", json=chat_body(model=model, text="a b", stream=False))
    assert whole.json()["message"]["thinking"] == "Thinking about: a b"
    quiet = client.post("/api/chat", json=chat_body(model=model, stream=False, think=False))
    assert "thinking" not in quiet.json()["message"]
    generated = client.post(
        "/api/generate", json={"model": model, "prompt": "x y", "stream": False}
    ).json()
    assert (generated["thinking"], generated["response"]) == ("Thinking about: x y", "x y")


@pytest.mark.parametrize(
    ("model", "think", "error"),
    [
        ("think-qwen3", "minimal", 'invalid think value: "minimal"'),
        ("think-qwen3", "xhigh", 'invalid think value: "xhigh"'),
        ("think-qwen3", 1, "think must be a boolean or string"),
        ("llama3.2", True, '"llama3.2" does not support thinking'),
        ("llama3.2", "low", '"llama3.2" does not support thinking'),
    ],
)
def test_think_values_ollama_refuses(
    client: httpx.Client, model: str, think: object, error: str
) -> None:
    r = client.post("/api/chat", json=chat_body(model=model, think=think, stream=False))
    assert r.status_code == 400 and r.json()["error"].startswith(error)
    assert client.post("/api/chat", json=chat_body(model=model, think=False)).status_code == 200


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh", "none"])
def test_every_reasoning_effort_reaches_a_thinking_model(client: httpx.Client, effort: str) -> None:
    req = validate_chat(chat_body(model="think-qwen3", text="a", reasoning_effort=effort))
    r = client.post("/api/chat", json=chat_to_ollama(req.raw))
    assert r.status_code == 200, r.text
    out = ChatCompletion.model_validate(
        ollama_chat_to_openai(r.json(), id="chatcmpl-5", created=0, model=req.model)
    )
    reasoning = (out.choices[0].message.model_extra or {}).get("reasoning_content")
    assert reasoning == (None if effort == "none" else "Thinking about: a")


def test_chat_logprobs_round_trip(client: httpx.Client) -> None:
    req = validate_chat(chat_body(text="a b", logprobs=True, top_logprobs=2))
    resp = client.post("/api/chat", json=chat_to_ollama(req.raw)).json()
    assert [lp["token"] for lp in resp["logprobs"]] == ["a", " b"]
    assert len(resp["logprobs"][0]["top_logprobs"]) == 2
    out = ChatCompletion.model_validate(
        ollama_chat_to_openai(resp, id="chatcmpl-6", created=0, model=req.model)
    )
    assert out.choices[0].logprobs is not None and out.choices[0].logprobs.content is not None
    first = out.choices[0].logprobs.content[0]
    assert (first.token, first.bytes, len(first.top_logprobs)) == ("a", [97], 2)
    bad = client.post("/api/chat", json=chat_body(logprobs=True, top_logprobs=21))
    assert bad.status_code == 400 and "between 0 and 20" in bad.json()["error"]


def test_chat_stream_logprobs_become_valid_chunks(client: httpx.Client) -> None:
    req = validate_chat(chat_body(text="a b c", stream=True, logprobs=True))
    stream = OllamaChatStream(id="chatcmpl-7", created=0, model=req.model)
    events, failure = translate_stream(client, "/api/chat", chat_to_ollama(req.raw), stream)
    assert failure is None
    parsed = [ChatCompletionChunk.model_validate(c) for c in sse_data(events)[:-1]]
    tokens = [
        t.token
        for c in parsed
        if c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert tokens == ["a", " b", " c"]


def test_completion_logprobs_and_thinking_round_trip(client: httpx.Client) -> None:
    req = validate_completion({"model": "think-qwen3", "prompt": "x y", "logprobs": 1})
    resp = client.post("/api/generate", json=completion_to_ollama(req.raw)).json()
    out = Completion.model_validate(
        ollama_generate_to_openai(resp, id="cmpl-2", created=0, model=req.model)
    )
    choice = out.choices[0]
    assert choice.text == "x y"
    assert (choice.model_extra or {}).get("reasoning_content") == "Thinking about: x y"
    assert choice.logprobs is not None and choice.logprobs.tokens is not None
    assert choice.logprobs.tokens[-2:] == ["x", " y"]


def test_embedding_an_empty_string_gives_nothing(client: httpx.Client) -> None:
    r = client.post("/api/embed", json={"model": "all-minilm", "input": ""})
    assert r.status_code == 200 and r.json() == {"model": "all-minilm", "embeddings": []}
    with pytest.raises(OpenAIError) as info:  # so Gate refuses it before asking
        embeddings_to_ollama(validate_embeddings({"model": "all-minilm", "input": ""}).raw)
    assert info.value.status == 400


def test_cloud_model_without_signin_is_401(client: httpx.Client) -> None:
    r = client.post("/api/chat", json=chat_body(model="gpt-oss:120b-cloud"))
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "signin_url": fake.SIGNIN_URL}
    error = ollama_error(r.status_code, r.content, model="gpt-oss:120b-cloud")
    assert error.status == 502 and "ollama signin" in str(error)
    assert fake.SIGNIN_URL in str(error) and "API key" not in str(error)


# --- fault modes ---------------------------------------------------------------------------


def chat_stream() -> OllamaChatStream:
    return OllamaChatStream(id="chatcmpl-f", created=0, model="m")


def test_error_model_sends_an_error_line(client: httpx.Client) -> None:
    out = lines(client.post("/api/chat", json=chat_body(model="error-llama")))
    assert [set(line) for line in out[:2]] == [{"model", "created_at", "message", "done"}] * 2
    assert out[-1] == {"error": fake.RUNNER_ERROR}
    stream = chat_stream()
    events, _ = translate_stream(client, "/api/chat", chat_body(model="error-llama"), stream)
    data = sse_data(events)
    assert fake.RUNNER_ERROR in data[-1]["error"]["message"] and DONE not in events
    r = client.post("/api/chat", json=chat_body(model="error-llama", stream=False))
    assert r.status_code == 500 and r.json() == {"error": fake.RUNNER_ERROR}


def test_dying_model_drops_the_connection(client: httpx.Client) -> None:
    stream = chat_stream()
    events, failure = translate_stream(client, "/api/chat", chat_body(model="dying-llama"), stream)
    assert isinstance(failure, httpx.RemoteProtocolError)
    data = sse_data(events)
    assert len(data) == 3  # two pieces, then the error
    assert data[-1]["error"]["code"] == "upstream_closed"
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/api/chat", json=chat_body(model="dying-llama", stream=False))


def test_garbage_model_sends_a_line_that_is_not_json(client: httpx.Client) -> None:
    r = client.post("/api/chat", json=chat_body(model="garbage-llama"))
    assert r.text.splitlines()[-1].encode() == fake.GARBAGE
    events, _ = translate_stream(
        client, "/api/chat", chat_body(model="garbage-llama"), chat_stream()
    )
    assert sse_data(events)[-1]["error"]["code"] == "bad_upstream_response"
    r = client.post("/api/chat", json=chat_body(model="garbage-llama", stream=False))
    with pytest.raises(ValueError):
        r.json()


def test_slow_model_waits_between_lines(client: httpx.Client) -> None:
    started = time.monotonic()
    out = lines(client.post("/api/chat", json=chat_body(model="slow-llama", text="a b c")))
    # one wait before each of the three pieces and before the done line
    assert time.monotonic() - started >= 4 * DELAY
    assert out[-1]["done"] is True


def test_fault_models_also_embed_or_fail(client: httpx.Client) -> None:
    # EmbedHandler answers a runner that died with a 400, not a 5xx: Gate makes it a 502
    r = client.post("/api/embed", json={"model": "error-x", "input": "a"})
    assert r.status_code == 400 and r.json() == {"error": fake.EMBED_RUNNER_ERROR}
    error = ollama_error(r.status_code, r.content, model="error-x", op="embeddings")
    assert (error.status, error.code) == (502, "upstream_error")


# --- in-process, on trio -------------------------------------------------------------------


@pytest.mark.anyio
async def test_serve_in_a_task_group_and_stop() -> None:
    stop = anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(fake.serve, models=["tiny"], shutdown=stop))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                tags = (await c.get("/api/tags")).json()
                assert [m["name"] for m in tags["models"]] == ["tiny:latest"]
                digest = hashlib.sha256(b"tiny:latest").hexdigest()
                assert tags["models"][0]["digest"] == digest
            stop.set()
