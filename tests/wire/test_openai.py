"""OpenAI's wire format: request validation (status, type, param and a message that says
what to fix), the error object, and the ``name@peer`` model target."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gate_runner.errors import GateError
from gate_runner.wire.openai import (
    ChatRequest,
    OpenAIError,
    error_response,
    openai_error,
    parse_model_target,
    validate_chat,
    validate_completion,
    validate_embeddings,
)

USER = {"role": "user", "content": "Hi"}
_DROP = object()  # a field value meaning "leave this field out"


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "llama3.2", "messages": [USER]}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not _DROP}


# (body, param, words the message must contain)
BAD_CHAT: list[tuple[object, str | None, list[str]]] = [
    ([], None, ["JSON object", "empty array"]),
    ("hello", None, ["JSON object"]),
    (None, None, ["JSON object", "null"]),
    (chat(model=_DROP), "model", ["model is required", "GET /v1/models"]),
    (chat(model=""), "model", ["non-empty string"]),
    (chat(model=7), "model", ["non-empty string", "7"]),
    (chat(model="llama 3"), "model", ["whitespace"]),
    (chat(model="llama\x00"), "model", ["control characters"]),
    (chat(model="x" * 300), "model", ["300 characters", "limit of 256"]),
    (chat(model="@bob"), "model", ["no model", "<model>@bob"]),
    (chat(model="@"), "model", ["neither"]),
    (chat(messages=_DROP), "messages", ["messages is required", '"role": "user"']),
    (chat(messages="hi"), "messages", ["array of message objects", "'hi'"]),
    (chat(messages={"role": "user"}), "messages", ["array", "object"]),
    (chat(messages=[]), "messages", ["must not be empty", "at least one message"]),
    (chat(messages=[USER, "hi"]), "messages[1]", ["an object such as"]),
    (chat(messages=[USER, {"content": "x"}]), "messages[1].role", ["one of", "null"]),
    (
        chat(messages=[USER, USER, {"role": "bot", "content": "x"}]),
        "messages[2].role",
        ["system, user, assistant, tool, developer", "'bot'"],
    ),
    (chat(messages=[{"role": "user"}]), "messages[0].content", ["required", "string"]),
    (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content", ["string", "5"]),
    (
        chat(messages=[{"role": "user", "content": ["hi"]}]),
        "messages[0].content[0]",
        ["an object"],
    ),
    (
        chat(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        "messages[0].content[0].type",
        ['"text"'],
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
        "messages[0].content[0].text",
        ["a string"],
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url",
        ["URL"],
    ),
    (
        chat(messages=[{"role": "assistant", "content": None}]),
        "messages[0].content",
        ["content or tool_calls"],
    ),
    (
        chat(messages=[{"role": "user", "content": "x", "tool_calls": []}]),
        "messages[0].tool_calls",
        ["only allowed on assistant"],
    ),
    (
        chat(messages=[{"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}]),
        "messages[0].tool_calls[0].function.name",
        ["a string"],
    ),
    (
        chat(messages=[{"role": "tool", "content": "42"}]),
        "messages[0].tool_call_id",
        ["a string", "null"],
    ),
    (chat(max_tokens=-1), "max_tokens", ["non-negative integer", "-1"]),
    (chat(max_tokens=True), "max_tokens", ["non-negative integer", "true"]),
    (chat(max_tokens=1.5), "max_tokens", ["integer", "1.5"]),
    (chat(max_tokens="10"), "max_tokens", ["integer", "'10'"]),
    (chat(max_completion_tokens=-5), "max_completion_tokens", ["non-negative"]),
    (chat(temperature=3), "temperature", ["from 0 to 2", "3"]),
    (chat(temperature=-0.1), "temperature", ["from 0 to 2"]),
    (chat(temperature=float("nan")), "temperature", ["from 0 to 2"]),
    (chat(temperature=False), "temperature", ["number", "false"]),
    (chat(top_p=1.5), "top_p", ["from 0 to 1"]),
    (chat(n=0), "n", ["at least 1"]),
    (chat(stream="yes"), "stream", ["true or false"]),
    (chat(stream_options=True), "stream_options", ["an object"]),
    (chat(stream=True, stream_options={"include_usage": 1}), "stream_options.include_usage", []),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop", ["at most 4", "not 5"]),
    (chat(stop=[1]), "stop", ["array of up to 4 strings"]),
    (chat(presence_penalty=2.5), "presence_penalty", ["from -2 to 2"]),
    (chat(seed=1.0), "seed", ["integer"]),
    (chat(top_logprobs=21), "top_logprobs", ["from 0 to 20"]),
    (chat(tools={}), "tools", ["array of tools"]),
    (chat(tools=[{"type": "function", "function": {}}]), "tools[0].function.name", []),
    (chat(response_format={"type": "xml"}), "response_format.type", ["json_schema"]),
    (chat(response_format={"type": "json_schema"}), "response_format.json_schema", []),
]


@pytest.mark.parametrize(("body", "param", "words"), BAD_CHAT)
def test_bad_chat_requests_name_the_param_and_the_fix(
    body: object, param: str | None, words: list[str]
) -> None:
    with pytest.raises(OpenAIError) as info:
        validate_chat(body)
    error = info.value
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param)
    message = error.body()["error"]["message"]
    for word in words:
        assert word in message, message
    if param is not None:
        assert param.split("[")[0].split(".")[0] in message


GOOD_CHAT: list[tuple[dict[str, Any], tuple[str, str | None, bool, bool, int | None]]] = [
    (chat(), ("llama3.2", None, False, False, None)),
    (chat(model="llama3.2@alice"), ("llama3.2", "alice", False, False, None)),
    (chat(stream=True), ("llama3.2", None, True, False, None)),
    (
        chat(stream=True, stream_options={"include_usage": True}),
        ("llama3.2", None, True, True, None),
    ),
    # include_usage means nothing without stream; Gate ignores it rather than refusing
    (chat(stream_options={"include_usage": True}), ("llama3.2", None, False, False, None)),
    (chat(max_tokens=0), ("llama3.2", None, False, False, 0)),
    (chat(max_tokens=64), ("llama3.2", None, False, False, 64)),
    (chat(max_tokens=64, max_completion_tokens=8), ("llama3.2", None, False, False, 8)),
    (chat(max_tokens=None, temperature=None, stop=None), ("llama3.2", None, False, False, None)),
]


@pytest.mark.parametrize(("body", "expected"), GOOD_CHAT)
def test_good_chat_requests_give_the_routing_fields(
    body: dict[str, Any], expected: tuple[str, str | None, bool, bool, int | None]
) -> None:
    req = validate_chat(body)
    assert isinstance(req, ChatRequest)
    assert (req.model, req.peer, req.stream, req.include_usage, req.max_tokens) == expected


def test_every_message_shape_openai_documents_is_accepted() -> None:
    body = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                ],
                "name": "ann",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "assistant", "content": None, "refusal": "no"},
        ],
        temperature=0,
        top_p=1,
        n=1,
        stop="\n",
        seed=-3,
        logit_bias={"50256": -100},
        tools=[{"type": "function", "function": {"name": "look", "parameters": {}}}],
        tool_choice="auto",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        some_future_param={"anything": True},
    )
    assert validate_chat(body).model == "llama3.2"


def test_the_raw_body_passes_through_untouched() -> None:
    body = chat(model="llama3.2@bob", temperature=0.5, some_future_param=[1, 2])
    before = copy.deepcopy(body)
    req = validate_chat(body)
    assert req.raw == before and req.raw is body
    assert req.body_for("llama3.2:latest") == {**before, "model": "llama3.2:latest"}
    assert body == before  # body_for copies


BAD_COMPLETIONS: list[tuple[dict[str, Any], str, list[str]]] = [
    ({"model": "m"}, "prompt", ["prompt is required"]),
    ({"model": "m", "prompt": 3}, "prompt", ["a string", "3"]),
    ({"model": "m", "prompt": []}, "prompt", ["empty array"]),
    ({"model": "m", "prompt": ["a", 1]}, "prompt", ["token ids"]),
    ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens", ["non-negative"]),
    ({"model": "m", "prompt": "x", "logprobs": 6}, "logprobs", ["from 0 to 5"]),
    ({"model": "m", "prompt": "x", "echo": "no"}, "echo", ["true or false"]),
    ({"model": "m", "prompt": "x", "best_of": 0}, "best_of", ["at least 1"]),
]


@pytest.mark.parametrize(("body", "param", "words"), BAD_COMPLETIONS)
def test_bad_completion_requests(body: dict[str, Any], param: str, words: list[str]) -> None:
    with pytest.raises(OpenAIError) as info:
        validate_completion(body)
    assert (info.value.status, info.value.param) == (400, param)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("prompt", ["x", ["a", "b"], [1, 2], [[1], [2, 3]]])
def test_completion_prompts(prompt: object) -> None:
    req = validate_completion({"model": "m@p", "prompt": prompt, "stream": True, "max_tokens": 4})
    assert (req.model, req.peer, req.stream, req.include_usage, req.max_tokens) == (
        "m",
        "p",
        True,
        False,
        4,
    )


BAD_EMBEDDINGS: list[tuple[dict[str, Any], str, list[str]]] = [
    ({"model": "m"}, "input", ["input is required"]),
    ({"model": "m", "input": []}, "input", ["non-empty array"]),
    ({"model": "m", "input": [1, "a"]}, "input", ["token ids"]),
    ({"model": "m", "input": {"text": "a"}}, "input", ["an object"]),
    ({"model": "m", "input": "a", "encoding_format": "hex"}, "encoding_format", ["base64"]),
    ({"model": "m", "input": "a", "dimensions": 0}, "dimensions", ["at least 1"]),
]


@pytest.mark.parametrize(("body", "param", "words"), BAD_EMBEDDINGS)
def test_bad_embeddings_requests(body: dict[str, Any], param: str, words: list[str]) -> None:
    with pytest.raises(OpenAIError) as info:
        validate_embeddings(body)
    assert (info.value.status, info.value.param) == (400, param)
    for word in words:
        assert word in str(info.value)


def test_good_embeddings_request() -> None:
    req = validate_embeddings({"model": "e@n1", "input": ["a", "b"], "encoding_format": "float"})
    assert (req.model, req.peer) == ("e", "n1")


TARGETS: list[tuple[str, tuple[str, str | None]]] = [
    ("llama3.2", ("llama3.2", None)),
    ("llama3.2@alice", ("llama3.2", "alice")),
    ("llama3.2:8b@alice", ("llama3.2:8b", "alice")),
    ("org/model@12D3KooWabc", ("org/model", "12D3KooWabc")),
    ("a@b@carol", ("a@b", "carol")),  # the LAST @ splits
    ("org/model@sha256:ab12", ("org/model@sha256:ab12", None)),  # a digest is no peer
    ("hf.co/u/r@main/x", ("hf.co/u/r@main/x", None)),  # nor is a path
    ("org/model@v2@", ("org/model@v2", None)),  # a trailing @ says "no peer"
    ("llama3.2@", ("llama3.2", None)),
]


@pytest.mark.parametrize(("model", "expected"), TARGETS)
def test_parse_model_target(model: str, expected: tuple[str, str | None]) -> None:
    assert parse_model_target(model) == expected


ERRORS: list[tuple[OpenAIError, int, str, str | None, str | None]] = [
    (OpenAIError.invalid_request("bad", param="x"), 400, "invalid_request_error", "x", None),
    (OpenAIError.unauthorized(), 401, "authentication_error", None, "invalid_api_key"),
    (OpenAIError.forbidden("untrusted peer"), 403, "permission_error", None, None),
    (OpenAIError.model_not_found("m"), 404, "invalid_request_error", "model", "model_not_found"),
    (OpenAIError.rate_limited("slow down"), 429, "rate_limit_error", None, "rate_limit_exceeded"),
    (OpenAIError.internal("bug"), 500, "server_error", None, None),
    (OpenAIError.bad_gateway("bad"), 502, "api_error", None, "upstream_error"),
    (OpenAIError.no_provider("none"), 503, "api_error", None, "no_provider_available"),
    (OpenAIError.upstream_timeout("slow"), 504, "api_error", None, "upstream_timeout"),
]


def test_the_error_boundary_keeps_refusals_and_hides_bugs() -> None:
    refusal = OpenAIError.rate_limited("slow down", retry_after=2.1)
    assert openai_error(refusal) is refusal
    status, headers, body = error_response(refusal)
    assert status == 429 and ("Retry-After", "3") in headers
    assert ("content-type", "application/json") in headers
    assert json.loads(body) == refusal.body()

    said = openai_error(GateError("state.db is full", hint="free space"))
    assert said.status == 500 and said.type == "server_error"
    assert str(said) == "state.db is full (free space)"  # a GateError says what to fix

    bug = openai_error(KeyError("secret-internal-name"))
    assert bug.status == 500 and "secret-internal-name" not in str(bug)
    assert "gate logs" in str(bug)


@pytest.mark.parametrize(("error", "status", "type_", "param", "code"), ERRORS)
def test_error_constructors(
    error: OpenAIError, status: int, type_: str, param: str | None, code: str | None
) -> None:
    assert isinstance(error, GateError)
    body = error.body()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (error.status, body["error"]["type"], body["error"]["param"], body["error"]["code"]) == (
        status,
        type_,
        param,
        code,
    )
    assert body["error"]["message"]


def test_error_message_carries_the_hint_and_model() -> None:
    error = OpenAIError.model_not_found("qwen3")
    assert "`qwen3`" in error.body()["error"]["message"]
    assert "GET /v1/models" in error.body()["error"]["message"]


@pytest.mark.parametrize(("retry_after", "header"), [(None, None), (0.2, "1"), (30, "30")])
def test_rate_limited_sends_retry_after(retry_after: float | None, header: str | None) -> None:
    error = OpenAIError.rate_limited("too many requests", retry_after=retry_after)
    assert error.headers().get("Retry-After") == header
    if header is not None:
        assert f"retry after {header} s" in error.body()["error"]["message"]
