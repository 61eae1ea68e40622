"""OpenAI <-> llama-cpp-python translation without a model: request bodies to the engine's
keyword arguments, refusals with their param, outputs and exceptions back to OpenAI's shapes."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from gate_runner.wire.llamacpp import (
    base64_floats,
    chat_messages,
    chat_params,
    check_dimensions,
    completion_params,
    completion_to_openai,
    embedding_inputs,
    embeddings_to_openai,
    llama_error,
    logit_bias,
    stream_chunk,
    usage,
    usage_chunk,
)
from gate_runner.wire.openai import OpenAIError, validate_chat, validate_completion
from tests.llm.engine import require_llama_cpp

USER = [{"role": "user", "content": "Hi"}]


def chat(**body: Any) -> dict[str, Any]:
    return chat_params(validate_chat({"model": "m", "messages": USER, **body}))


def completion(**body: Any) -> dict[str, Any]:
    body.setdefault("prompt", "The node")
    return completion_params(validate_completion({"model": "m", **body}))


def refusal(call: Any, *args: Any, **kw: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        call(*args, **kw)
    assert (caught.value.status, caught.value.type) == (400, "invalid_request_error")
    return caught.value


# --- requests ------------------------------------------------------------------------------


def test_chat_params_pass_only_what_the_client_set() -> None:
    params = chat(temperature=0.5, stop=["x"], seed=3, user="u", stream_options=None, top_p=None)
    assert params == {"temperature": 0.5, "stop": ["x"], "seed": 3, "messages": USER}


def test_chat_params_take_max_completion_tokens_over_max_tokens() -> None:
    assert chat(max_tokens=5, max_completion_tokens=7)["max_tokens"] == 7
    assert "max_tokens" not in chat()


def test_chat_params_pass_tools_through() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    params = chat(tools=tools, tool_choice="auto", response_format={"type": "json_object"})
    assert params["tools"] == tools and params["tool_choice"] == "auto"
    assert params["response_format"] == {"type": "json_object"}


def test_chat_messages_as_templates_expect_them() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    assert chat_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "", "tool_calls": []},
    ]
    assert messages[0]["role"] == "developer", "the request's own messages are not changed"


def test_a_non_text_part_is_refused_with_its_path() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    error = refusal(chat_messages, [{"role": "user", "content": [image]}])
    assert error.param == "messages[0].content[0].type"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")],
)
def test_chat_refusals(body: dict[str, Any], param: str) -> None:
    assert refusal(chat, **body).param == param


def test_chat_allows_n_of_one_and_logprobs_false() -> None:
    assert chat(n=1, logprobs=False) == {"messages": USER}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("text", "text"), (["one"], "one"), ([1, 2, 3], [1, 2, 3]), ([[1, 2]], [1, 2])],
)
def test_completion_prompt_forms(prompt: Any, expected: Any) -> None:
    assert completion(prompt=prompt)["prompt"] == expected


def test_completion_params() -> None:
    params = completion(echo=True, suffix="!", max_tokens=4, tools=None, best_of=1)
    assert params == {"echo": True, "suffix": "!", "prompt": "The node", "max_tokens": 4}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"n": 3}, "n"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": 2}, "logprobs"),
    ],
)
def test_completion_refusals(body: dict[str, Any], param: str) -> None:
    assert refusal(completion, **body).param == param


def test_logit_bias_keys_become_token_ids() -> None:
    assert logit_bias({"5": 1, "0": -100, "9": 2.5}, 10) == {5: 1.0, 0: -100.0, 9: 2.5}


@pytest.mark.parametrize(
    "bias", [{"cat": 1}, {"10": 1}, {"-1": 1}, {"3": 101}, {"3": True}, {"3": "1"}]
)
def test_logit_bias_refusals(bias: dict[str, Any]) -> None:
    assert refusal(logit_bias, bias, 10).param == "logit_bias"


def test_embedding_inputs() -> None:
    assert embedding_inputs({"input": "a"}) == ["a"]
    assert embedding_inputs({"input": ["a", "b"]}) == ["a", "b"]
    assert refusal(embedding_inputs, {"input": [1, 2]}).param == "input"
    assert refusal(embedding_inputs, {"input": ["a", ""]}).param == "input"


def test_dimensions_must_be_the_models_own() -> None:
    check_dimensions({}, 64)
    check_dimensions({"dimensions": 64}, 64)
    error = refusal(check_dimensions, {"dimensions": 32}, 64)
    assert error.param == "dimensions" and "must be 64" in error.message


# --- responses -----------------------------------------------------------------------------


def test_a_whole_answer_takes_the_requests_id() -> None:
    out = completion_to_openai({"id": "cmpl-llama", "choices": []}, request_id="chatcmpl-1")
    assert out == {"id": "chatcmpl-1", "choices": []}


def test_base64_embeddings_are_little_endian_float32() -> None:
    vector = [0.5, -1.25, 3.0]
    encoded = base64_floats(vector)
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == vector
    out = {"data": [{"embedding": vector}]}
    assert embeddings_to_openai(out, {"encoding_format": "base64"}) == {
        "data": [{"embedding": encoded}]
    }
    floats = {"data": [{"embedding": vector}]}
    assert embeddings_to_openai(floats, {"encoding_format": "float"})["data"][0] == {
        "embedding": vector
    }


def test_usage_counts_a_missing_prompt_as_zero() -> None:
    assert usage(None, 3) == {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3}
    assert usage(5, 3)["total_tokens"] == 8


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_chunk(include_usage: bool) -> None:
    chunk = {"id": "llama-1", "model": "/models/x.gguf", "created": 7, "choices": []}
    out = stream_chunk(chunk, request_id="chatcmpl-1", model="x", include_usage=include_usage)
    expected: dict[str, Any] = {"id": "chatcmpl-1", "model": "x", "created": 7, "choices": []}
    if include_usage:
        expected["usage"] = None
    assert out == expected


def test_usage_chunk() -> None:
    counts = usage(2, 1)
    chunk = usage_chunk(
        request_id="r", object_name="text_completion", created=7, model="x", usage=counts
    )
    assert chunk == {
        "id": "r",
        "object": "text_completion",
        "created": 7,
        "model": "x",
        "choices": [],
        "usage": counts,
    }


# --- errors --------------------------------------------------------------------------------


def test_a_context_overflow_is_a_400_on_the_param() -> None:
    error = ValueError("Requested tokens (1300) exceed context window of 1024")
    out = llama_error(error, provider="p", param="messages", max_ctx=2048)
    assert (out.status, out.code, out.param) == (400, "context_length_exceeded", "messages")
    assert "1300 tokens" in out.message and "context window of 1024" in out.message
    assert out.hint is not None and "2048" in out.hint


def test_bad_parameters_are_a_400() -> None:
    require_llama_cpp()  # llama_error reads jinja2's TemplateError, which llama-cpp-python brings
    out = llama_error(TypeError("bad"), provider="p", param=None, max_ctx=2048)
    assert (out.status, out.type) == (400, "invalid_request_error")
    assert "llama.cpp cannot run this request: bad" in out.message


def test_other_failures_are_a_502() -> None:
    require_llama_cpp()  # llama_error reads jinja2's TemplateError, which llama-cpp-python brings
    out = llama_error(RuntimeError("decode failed"), provider="p", param=None, max_ctx=2048)
    assert (out.status, out.code) == (502, "engine_error")
    assert "provider p" in out.message
