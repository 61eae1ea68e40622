"""Ollama <-> OpenAI translation: request bodies, whole answers, NDJSON streams (cut at every
byte offset) to SSE chunks, mid-stream errors, early EOF, model lists and error bodies."""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from gate_runner.wire.ollama import (
    OllamaChatStream,
    OllamaGenerateStream,
    chat_to_ollama,
    completion_to_ollama,
    embeddings_to_ollama,
    finish_reason,
    ollama_chat_to_openai,
    ollama_embed_to_openai,
    ollama_error,
    ollama_generate_to_openai,
    parse_version,
    tags_to_models,
)
from gate_runner.wire.openai import OpenAIError
from gate_runner.wire.sse import DONE, SSEParser

# --- requests ------------------------------------------------------------------------------


def test_chat_request_minimal() -> None:
    body = chat_to_ollama({"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]})
    # stream is always explicit: Ollama streams by default, OpenAI does not
    assert body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }
    assert "keep_alive" not in body


def test_chat_request_options_and_format() -> None:
    body = chat_to_ollama(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 99,
            "max_completion_tokens": 7,
            "stop": "END",
            "seed": 42,
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "response_format": {"type": "json_object"},
            "logprobs": True,
            "top_logprobs": 3,
            "user": "ann",
        }
    )
    assert body["stream"] is True
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 42,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "num_predict": 7,  # max_completion_tokens wins over max_tokens
        "stop": ["END"],
    }
    assert body["format"] == "json"
    # logprobs and top_logprobs are Ollama's own names (0.12.11 and later)
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)
    assert set(body) == {
        "model",
        "messages",
        "stream",
        "options",
        "format",
        "logprobs",
        "top_logprobs",
    }


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json"),
    ],
)
def test_chat_request_response_format(response_format: dict[str, Any], expected: object) -> None:
    body = chat_to_ollama(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            **{"response_format": response_format},
        }
    )
    assert body.get("format") == expected


def test_chat_request_messages_parts_images_and_tools() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    body = chat_to_ollama(
        {
            "model": "llava",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        {"type": "text", "text": "this?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
            ],
            "tools": tools,
            "tool_choice": "auto",
        }
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is\nthis?", "images": [png]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_9", "function": {"name": "weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_name": "weather", "tool_call_id": "call_9"},
    ]
    assert body["tools"] == tools


def test_tool_choice_none_drops_the_tools() -> None:
    body = chat_to_ollama(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "none",
        }
    )
    assert "tools" not in body


@pytest.mark.parametrize(
    ("effort", "think"),
    [
        ("none", False),
        ("minimal", "low"),  # below Ollama's lowest tier: clamped, not refused
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "max"),  # above Ollama's "high": its "max"
        ("max", "max"),
        (None, None),
        ("", None),
    ],
)
def test_reasoning_effort_becomes_a_think_value_ollama_accepts(
    effort: str | None, think: bool | str | None
) -> None:
    body = chat_to_ollama(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}
    )
    assert body.get("think") == think
    # api.ThinkValue takes exactly these (api/types.go, IsValid)
    assert think is None or think in (True, False, "low", "medium", "high", "max")


@pytest.mark.parametrize("effort", ["extreme", 3])
def test_unknown_reasoning_effort_is_refused_by_gate(effort: object) -> None:
    with pytest.raises(OpenAIError) as info:
        chat_to_ollama(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "reasoning_effort": effort,
            }
        )
    assert (info.value.status, info.value.param) == (400, "reasoning_effort")
    assert "minimal" in str(info.value) and "xhigh" in str(info.value)


def test_tool_history_keeps_call_ids_and_earlier_reasoning() -> None:
    """A second turn after tool calls: Ollama gets back the calls' ids, the results'
    tool_call_id and the assistant's reasoning, under either of OpenAI's field names."""
    call: dict[str, Any] = {
        "id": "call_k3v9x0ab",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I need the weather tool twice.",
            "tool_calls": [call, {**call, "id": "call_2", "function": {**call["function"]}}],
        },
        {"role": "tool", "tool_call_id": "call_k3v9x0ab", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_2", "name": "weather", "content": "sun"},
        {"role": "assistant", "content": "Rain, then sun.", "reasoning": "Both came back."},
        {"role": "user", "content": "Thanks"},
    ]
    out = chat_to_ollama({"model": "m", "messages": messages})["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": "",
        "thinking": "I need the weather tool twice.",
        "tool_calls": [
            {"id": "call_k3v9x0ab", "function": {"name": "weather", "arguments": {"city": "Oslo"}}},
            {"id": "call_2", "function": {"name": "weather", "arguments": {"city": "Oslo"}}},
        ],
    }
    assert out[2] == {
        "role": "tool",
        "content": "rain",
        "tool_name": "weather",
        "tool_call_id": "call_k3v9x0ab",
    }
    assert out[3]["tool_call_id"] == "call_2"
    assert out[4] == {
        "role": "assistant",
        "content": "Rain, then sun.",
        "thinking": "Both came back.",
    }
    assert out[5] == {"role": "user", "content": "Thanks"}


def test_chat_top_logprobs_go_only_with_logprobs() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert "logprobs" not in chat_to_ollama({**base, "logprobs": False, "top_logprobs": 2})
    assert "top_logprobs" not in chat_to_ollama({**base, "top_logprobs": 2})
    body = chat_to_ollama({**base, "logprobs": True})
    assert body["logprobs"] is True and "top_logprobs" not in body


BAD_FOR_OLLAMA: list[tuple[dict[str, Any], str, str]] = [
    ({"n": 2}, "n", "several choices"),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ],
                }
            ]
        },
        "messages[0].content[0].image_url.url",
        "data:image/png;base64",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        "messages[0].content[0].type",
        "only text and image_url",
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{oops"},
                        }
                    ],
                }
            ]
        },
        "messages[0].tool_calls[0].function.arguments",
        "JSON object",
    ),
]


@pytest.mark.parametrize(("fields", "param", "words"), BAD_FOR_OLLAMA)
def test_chat_request_ollama_cannot_serve(fields: dict[str, Any], param: str, words: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    with pytest.raises(OpenAIError) as info:
        chat_to_ollama(body)
    assert (info.value.status, info.value.param) == (400, param)
    assert words in str(info.value)


def test_completion_request() -> None:
    body = completion_to_ollama(
        {"model": "m", "prompt": ["Once"], "suffix": "end", "max_tokens": 5, "stop": ["."]}
    )
    assert body == {
        "model": "m",
        "prompt": "Once",
        "stream": False,
        "suffix": "end",
        "options": {"num_predict": 5, "stop": ["."]},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"echo": True}, "echo"),
        ({"best_of": 3}, "best_of"),
    ],
)
def test_completion_request_ollama_cannot_serve(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(OpenAIError) as info:
        completion_to_ollama({"model": "m", "prompt": "x", **fields})
    assert (info.value.status, info.value.param) == (400, param)


@pytest.mark.parametrize(
    ("logprobs", "expected"), [(0, {"logprobs": True}), (3, {"logprobs": True, "top_logprobs": 3})]
)
def test_completion_request_logprobs(logprobs: int, expected: dict[str, Any]) -> None:
    body = completion_to_ollama({"model": "m", "prompt": "x", "logprobs": logprobs})
    assert {k: body[k] for k in ("logprobs", "top_logprobs") if k in body} == expected


@pytest.mark.parametrize(
    ("value", "param"), [("", "input"), (["a", ""], "input[1]"), ([""], "input[0]")]
)
def test_embeddings_request_refuses_empty_strings(value: object, param: str) -> None:
    # Ollama answers "" with `"embeddings": []`, which clients index into and crash on.
    with pytest.raises(OpenAIError) as info:
        embeddings_to_ollama({"model": "e", "input": value})
    assert (info.value.status, info.value.param) == (400, param)
    assert "empty string" in str(info.value)


def test_embeddings_request() -> None:
    assert embeddings_to_ollama({"model": "e", "input": ["a", "b"], "dimensions": 4}) == {
        "model": "e",
        "input": ["a", "b"],
        "dimensions": 4,
    }
    with pytest.raises(OpenAIError, match="token ids"):
        embeddings_to_ollama({"model": "e", "input": [1, 2]})


# --- whole answers -------------------------------------------------------------------------

STATS = {
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}
USAGE = {"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}


@pytest.mark.parametrize(
    ("done_reason", "expected"),
    [("stop", "stop"), ("length", "length"), ("load", "stop"), ("unload", "stop"), (None, "stop")],
)
def test_finish_reason(done_reason: object, expected: str) -> None:
    assert finish_reason(done_reason) == expected


def test_chat_answer() -> None:
    resp = {
        "model": "llama3.2",
        "created_at": "2023-12-12T14:13:43.416799Z",
        "message": {"role": "assistant", "content": "Hello! How are you today?"},
        "done_reason": "length",
        "done": True,
        **STATS,
    }
    out = ollama_chat_to_openai(resp, id="chatcmpl-1", created=1700000000, model="llama3.2")
    assert out == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "llama3.2",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How are you today?"},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": USAGE,
    }


def test_chat_answer_with_tool_calls() -> None:
    resp = {
        "model": "llama3.2",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {
                        "name": "get_current_weather",
                        "arguments": {"format": "celsius", "location": "Paris, FR"},
                    }
                }
            ],
        },
        "done_reason": "stop",
        "done": True,
        "prompt_eval_count": 122,
        "eval_count": 33,
    }
    out = ollama_chat_to_openai(resp, id="chatcmpl-ab", created=1, model="m")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call == {
        "id": "call_ab_0",
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "arguments": json.dumps({"format": "celsius", "location": "Paris, FR"}),
        },
    }


def test_chat_answer_with_tool_calls_cut_by_the_token_limit_says_length() -> None:
    call = {"id": "call_a1", "function": {"index": 0, "name": "f", "arguments": {}}}
    resp = {
        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        "done_reason": "length",
        "done": True,
    }
    choice = ollama_chat_to_openai(resp, id="chatcmpl-x", created=0, model="m")["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"][0]["id"] == "call_a1"  # Ollama's own id is kept


LOGPROBS = [
    {
        "token": "Hi",
        "logprob": -0.25,
        "bytes": [72, 105],
        "top_logprobs": [
            {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
            {"token": "Hey", "logprob": -1.5, "bytes": [72, 101, 121]},
        ],
    },
    {"token": "", "logprob": -3.0},  # Ollama leaves bytes (and tops) out when empty
]


def test_chat_answer_with_logprobs_and_thinking() -> None:
    resp = {
        "message": {"role": "assistant", "content": "Hi", "thinking": "Say hi."},
        "done_reason": "stop",
        "done": True,
        "logprobs": LOGPROBS,
    }
    choice = ollama_chat_to_openai(resp, id="chatcmpl-x", created=0, model="m")["choices"][0]
    assert choice["message"]["reasoning_content"] == "Say hi."
    assert choice["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.25,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                    {"token": "Hey", "logprob": -1.5, "bytes": [72, 101, 121]},
                ],
            },
            {"token": "", "logprob": -3.0, "bytes": None, "top_logprobs": []},
        ],
        "refusal": None,
    }


def test_generate_answer_keeps_thinking_and_logprobs() -> None:
    resp = {
        "model": "m",
        "response": "Hi",
        "thinking": "The user wants a greeting.",
        "done": True,
        "done_reason": "stop",
        "logprobs": LOGPROBS,
    }
    choice = ollama_generate_to_openai(resp, id="cmpl-1", created=5, model="m")["choices"][0]
    assert choice["reasoning_content"] == "The user wants a greeting."
    assert choice["logprobs"] == {
        "tokens": ["Hi", ""],
        "token_logprobs": [-0.25, -3.0],
        "top_logprobs": [{"Hi": -0.25, "Hey": -1.5}, {}],
        "text_offset": [0, 2],
    }


@pytest.mark.parametrize(
    ("resp", "words"),
    [
        ([], "not an object"),
        ({"error": "model runner crashed"}, "model runner crashed"),
    ],
)
def test_bad_answers_are_502(resp: object, words: str) -> None:
    with pytest.raises(OpenAIError) as info:
        ollama_chat_to_openai(resp, id="x", created=0, model="m")
    assert info.value.status == 502
    assert words in str(info.value)


def test_generate_answer() -> None:
    resp = {"model": "m", "response": "The sky", "done": True, "done_reason": "stop", **STATS}
    out = ollama_generate_to_openai(resp, id="cmpl-1", created=5, model="m")
    assert out == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 5,
        "model": "m",
        "choices": [{"index": 0, "text": "The sky", "logprobs": None, "finish_reason": "stop"}],
        "usage": USAGE,
    }


def test_embed_answer() -> None:
    resp = {
        "model": "all-minilm",
        "embeddings": [[0.5, -0.25], [1.0, 0.0]],
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": 8,
    }
    out = ollama_embed_to_openai(resp, model="all-minilm")
    assert out == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]},
        ],
        "model": "all-minilm",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    packed = ollama_embed_to_openai(resp, model="all-minilm", encoding_format="base64")
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -0.25)


def test_tags_to_models() -> None:
    tags = {
        "models": [
            {
                "name": "codellama:13b",
                "modified_at": "2023-11-04T14:56:49.277302595-07:00",
                "size": 7365960935,
                "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
                "details": {"format": "gguf", "family": "llama"},
            },
            {"name": "llama3:latest", "model": "llama3:latest", "modified_at": "garbled"},
            {"size": 1},  # no name: skipped
        ]
    }
    expected_created = int(datetime(2023, 11, 4, 21, 56, 49, tzinfo=UTC).timestamp())
    assert tags_to_models(tags, owned_by="ollama") == [
        {
            "id": "codellama:13b",
            "object": "model",
            "created": expected_created,
            "owned_by": "ollama",
        },
        {"id": "llama3:latest", "object": "model", "created": 0, "owned_by": "ollama"},
    ]
    with pytest.raises(OpenAIError) as info:
        tags_to_models({"oops": []}, owned_by="x")
    assert info.value.status == 502


def test_parse_version() -> None:
    assert parse_version({"version": "0.5.1"}) == "0.5.1"
    with pytest.raises(OpenAIError, match="is it an Ollama server"):
        parse_version({"status": "ok"})


ERRORS: list[tuple[int, object, str | None, int, str | None, list[str]]] = [
    (
        404,
        b'{"error":"model \\"qwen\\" not found, try pulling it first"}',
        "qwen",
        404,
        "model_not_found",
        ["`qwen`", "try pulling it first", "ollama pull qwen"],
    ),
    (404, {"error": "model 'x' not found"}, None, 404, "model_not_found", ["model 'x'"]),
    (404, b"404 page not found", "m", 502, "upstream_error", ["no such endpoint"]),
    (400, {"error": "invalid options"}, None, 400, None, ["invalid options"]),
    (429, {"error": "too many"}, None, 429, "rate_limit_exceeded", ["too many"]),
    (
        401,
        {"error": "unauthorized", "signin_url": "https://ollama.com/connect?name=h&key=k"},
        None,
        502,
        "upstream_auth_failed",
        ["ollama signin", "https://ollama.com/connect?name=h&key=k"],
    ),
    (401, b'{"error":"unauthorized"}', None, 502, "upstream_auth_failed", ["ollama signin"]),
    (500, {"error": "the model failed"}, None, 502, "upstream_error", ["the model failed"]),
    (503, "server busy", None, 503, "no_provider_available", ["server busy"]),
    (504, b"", None, 504, "upstream_timeout", ["empty body"]),
]


# /api/embed answers 400 for its runner's failures too (EmbedHandler in server/routes.go).
EMBED_400S: list[tuple[str, int, str | None]] = [
    (
        'do embedding request: Post "http://127.0.0.1:40121/v1/embeddings": EOF',
        502,
        "upstream_error",
    ),
    ("embedding contains NaN or Inf values", 502, "upstream_error"),
    ("unexpected server status: 2", 502, "upstream_error"),
    ("the input length exceeds the context length", 400, None),
    ("input after truncation exceeds maximum context length", 400, None),
    ("invalid input type", 400, None),
    ("json: cannot unmarshal number into Go struct field", 400, None),
    ("missing request body", 400, None),
]


@pytest.mark.parametrize(("message", "out_status", "code"), EMBED_400S)
def test_embed_400s_from_the_runner_are_server_faults(
    message: str, out_status: int, code: str | None
) -> None:
    error = ollama_error(400, {"error": message}, model="e", op="embeddings")
    assert (error.status, error.code) == (out_status, code)
    assert message in str(error)
    # on chat, a 400 stays the client's: Ollama reports its runner's failures there as 500s
    assert ollama_error(400, {"error": message}, op="chat").status == 400


@pytest.mark.parametrize(("status", "body", "model", "out_status", "code", "words"), ERRORS)
def test_ollama_errors(
    status: int,
    body: object,
    model: str | None,
    out_status: int,
    code: str | None,
    words: list[str],
) -> None:
    error = ollama_error(status, body, model=model)
    assert (error.status, error.code) == (out_status, code)
    for word in words:
        assert word in str(error)


# --- streams -------------------------------------------------------------------------------


def ndjson(*objs: dict[str, Any]) -> bytes:
    # raw UTF-8, as Go writes it, so that some cuts fall inside a character
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs)


def piece(text: str) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "created_at": "2023-08-04T08:52:19.385406455-07:00",
        "message": {"role": "assistant", "content": text, "images": None},
        "done": False,
    }


DONE_LINE = {
    "model": "llama3.2",
    "created_at": "2023-08-04T19:22:45.499127Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    **STATS,
}
CHAT_STREAM = ndjson(piece("The"), piece(" sky"), piece(" é"), DONE_LINE)


def run(
    stream: OllamaChatStream | OllamaGenerateStream, chunks: list[bytes]
) -> tuple[list[bytes], list[Any]]:
    """Feed the chunks then close; return the raw SSE events and their parsed data."""
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(stream.feed(chunk))
    out.extend(stream.close())
    parser = SSEParser()
    data: list[Any] = []
    for event in out:
        [parsed] = parser.feed(event)  # each item is exactly one complete event
        data.append(parsed.data if parsed.data == "[DONE]" else json.loads(parsed.data))
    return out, data


def chat_stream(include_usage: bool = False) -> OllamaChatStream:
    return OllamaChatStream(
        id="chatcmpl-7", created=1700000000, model="llama3.2", include_usage=include_usage
    )


def test_chat_stream_shapes() -> None:
    stream = chat_stream()
    raw, data = run(stream, [CHAT_STREAM])
    assert raw[-1] == DONE
    chunks = data[:-1]
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-7"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["created"] == 1700000000
        assert chunk["model"] == "llama3.2"
        assert "usage" not in chunk
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": "The"},
        {"content": " sky"},
        {"content": " é"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]
    assert stream.finished and stream.error is None and stream.tokens_seen
    assert stream.usage == USAGE


def test_chat_stream_split_at_every_offset() -> None:
    whole = run(chat_stream(include_usage=True), [CHAT_STREAM])
    for cut in range(len(CHAT_STREAM) + 1):
        parts = [CHAT_STREAM[:cut], CHAT_STREAM[cut:]]
        assert run(chat_stream(include_usage=True), parts) == whole, f"cut at byte {cut}"


def test_chat_stream_byte_by_byte() -> None:
    whole = run(chat_stream(), [CHAT_STREAM])
    assert run(chat_stream(), [bytes([b]) for b in CHAT_STREAM]) == whole


def test_usage_chunk_only_with_include_usage() -> None:
    _, without = run(chat_stream(include_usage=False), [CHAT_STREAM])
    assert all(c == "[DONE]" or c["choices"] for c in without)

    _, data = run(chat_stream(include_usage=True), [CHAT_STREAM])
    *chunks, usage_chunk, done = data
    assert done == "[DONE]"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == USAGE
    assert all(c["usage"] is None for c in chunks)  # null on every other chunk, as OpenAI does
    assert len(data) == len(without) + 1


def test_chat_stream_mid_stream_error_line() -> None:
    stream = chat_stream(include_usage=True)
    body = ndjson(piece("The"), {"error": "an error was encountered while running the model"})
    raw, data = run(stream, [body + ndjson(piece("ignored"), DONE_LINE)])
    assert DONE not in raw
    first, error = data
    assert first["choices"][0]["delta"]["content"] == "The"
    assert set(error) == {"error"}
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert "an error was encountered while running the model" in error["error"]["message"]
    assert error["error"]["type"] == "api_error"
    assert stream.finished and stream.error is not None and stream.error.status == 502
    assert stream.usage is None
    assert stream.feed(b"more\n") == [] and stream.close() == []


def test_chat_stream_eof_without_done() -> None:
    stream = chat_stream()
    raw, data = run(stream, [ndjson(piece("The"), piece(" sky"))])
    assert DONE not in raw
    assert data[-1]["error"]["code"] == "upstream_closed"
    assert "closed the stream mid-response" in data[-1]["error"]["message"]
    assert stream.finished and stream.error is not None


def test_chat_stream_last_line_without_newline_still_counts() -> None:
    _, data = run(chat_stream(), [CHAT_STREAM.rstrip(b"\n")])
    assert data[-1] == "[DONE]"


def test_chat_stream_garbage_line() -> None:
    _, data = run(chat_stream(), [ndjson(piece("a")) + b"<html>oops</html>\n"])
    assert data[-1]["error"]["code"] == "bad_upstream_response"
    assert "<html>oops" in data[-1]["error"]["message"]


def test_chat_stream_role_goes_out_even_with_nothing_to_say() -> None:
    _, data = run(chat_stream(), [ndjson(DONE_LINE)])
    assert [c["choices"][0]["delta"] for c in data[:-1]] == [
        {"role": "assistant", "content": ""},
        {},
    ]


def test_chat_stream_crlf_lines() -> None:
    body = CHAT_STREAM.replace(b"\n", b"\r\n")
    assert run(chat_stream(), [body]) == run(chat_stream(), [CHAT_STREAM])


def test_chat_stream_tool_calls_and_thinking() -> None:
    call = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
    body = ndjson(
        {
            "model": "m",
            "message": {"role": "assistant", "content": "", "thinking": "hmm"},
            "done": False,
        },
        {
            "model": "m",
            "message": {"role": "assistant", "content": "", "tool_calls": [call]},
            "done": False,
        },
        DONE_LINE,
    )
    stream = chat_stream()
    _, data = run(stream, [body])
    deltas = [c["choices"][0]["delta"] for c in data[:-1]]
    assert deltas[0] == {"role": "assistant", "reasoning_content": "hmm", "content": ""}
    assert deltas[1] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_7_0",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ]
    }
    assert data[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_stream_tool_call_cut_by_the_token_limit_says_length() -> None:
    call = {"id": "call_q1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}
    body = ndjson(
        {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [call]}},
        {**DONE_LINE, "done_reason": "length"},
    )
    _, data = run(chat_stream(), [body])
    assert data[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_q1"
    assert data[-2]["choices"][0]["finish_reason"] == "length"


def test_chat_stream_logprobs() -> None:
    body = ndjson(
        {**piece("Hi"), "logprobs": LOGPROBS[:1]},
        # a line with logprobs alone, as Ollama sends while it holds back a tool call's text
        {**piece(""), "logprobs": LOGPROBS[1:]},
        DONE_LINE,
    )
    _, data = run(chat_stream(), [body])
    chunks = [c["choices"][0] for c in data[:-1]]
    assert chunks[0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert chunks[0]["logprobs"]["content"][0]["top_logprobs"][1]["token"] == "Hey"
    assert chunks[1]["delta"] == {}
    assert chunks[1]["logprobs"]["content"] == [
        {"token": "", "logprob": -3.0, "bytes": None, "top_logprobs": []}
    ]
    assert "logprobs" not in chunks[2] and chunks[2]["finish_reason"] == "stop"


def gen_line(text: str, done: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "created_at": "2023-08-04T08:52:19Z",
        "response": text,
        "done": done,
        **extra,
    }


GEN_STREAM = ndjson(
    gen_line("The"),
    gen_line(" sky"),
    gen_line("", True, done_reason="length", context=[1, 2], **STATS),
)


@pytest.mark.parametrize("cut", range(0, len(GEN_STREAM) + 1, 7))
def test_generate_stream(cut: int) -> None:
    stream = OllamaGenerateStream(id="cmpl-3", created=9, model="m", include_usage=True)
    raw, data = run(stream, [GEN_STREAM[:cut], GEN_STREAM[cut:]])
    *chunks, usage_chunk, done = data
    assert done == "[DONE]"
    assert [c["object"] for c in chunks] == ["text_completion"] * 3
    assert [c["choices"][0]["text"] for c in chunks] == ["The", " sky", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == USAGE
    assert stream.usage == USAGE


def test_generate_stream_error_and_eof() -> None:
    _, data = run(
        OllamaGenerateStream(id="c", created=0, model="m"),
        [ndjson(gen_line("a"), {"error": "boom"})],
    )
    assert "boom" in data[-1]["error"]["message"]
    _, data = run(OllamaGenerateStream(id="c", created=0, model="m"), [ndjson(gen_line("a"))])
    assert data[-1]["error"]["code"] == "upstream_closed"


def test_generate_stream_thinking_and_logprobs() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -0.5, "bytes": list(token.encode())}

    body = ndjson(
        gen_line("", thinking="Hmm.", logprobs=[lp("Hmm.")]),
        gen_line("The", logprobs=[lp("The")]),
        gen_line(" sky", logprobs=[lp(" sky")]),
        gen_line("", True, done_reason="stop", **STATS),
    )
    stream = OllamaGenerateStream(id="c", created=0, model="m")
    _, data = run(stream, [body])
    choices = [c["choices"][0] for c in data[:-1]]
    assert [c["text"] for c in choices] == ["", "The", " sky", ""]
    assert choices[0]["reasoning_content"] == "Hmm."
    assert [c["logprobs"]["text_offset"] for c in choices[:3]] == [[0], [4], [7]]
    assert choices[1]["logprobs"] == {
        "tokens": ["The"],
        "token_logprobs": [-0.5],
        "top_logprobs": None,
        "text_offset": [4],
    }
    assert choices[3]["logprobs"] is None and stream.tokens_seen
