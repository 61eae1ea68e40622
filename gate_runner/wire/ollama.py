"""Translation between OpenAI's API and Ollama's native one (/api/chat, /api/generate,
/api/embed, /api/tags): request bodies, whole responses, NDJSON streams to SSE, errors."""

from __future__ import annotations

__all__ = (
    "OllamaChatStream",
    "OllamaGenerateStream",
    "chat_to_ollama",
    "completion_to_ollama",
    "embeddings_to_ollama",
    "finish_reason",
    "ollama_chat_to_openai",
    "ollama_embed_to_openai",
    "ollama_error",
    "ollama_generate_to_openai",
    "parse_version",
    "tags_to_models",
)

import base64
import json
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from gate_runner.wire.openai import OpenAIError
from gate_runner.wire.sse import DONE, encode_json

# Sampling options whose OpenAI name is also Ollama's option name.
_SAME_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")

# OpenAI's reasoning_effort as Ollama's ``think`` (api.ThinkValue takes true, false, "low",
# "medium", "high" and "max", and answers anything else with a 400). OpenAI's scale reaches
# past both ends of Ollama's, so the ends are clamped to the nearest tier, as Ollama's own
# OpenAI layer does (thinkFromReasoningEffort in openai/openai.go, "ultra" included).
_THINK: Final[Mapping[str, bool | str]] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
    "max": "max",
    "ultra": "max",
}

# The reasoning an earlier assistant turn carries in OpenAI-style history: DeepSeek's and
# vLLM's name (which Gate answers with), then Ollama's and OpenRouter's.
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def finish_reason(done_reason: object) -> str:
    """Ollama's ``done_reason`` as OpenAI's ``finish_reason``.

    Ollama says "stop" or "length" after generating, and "load"/"unload" for requests that
    only (un)load a model; none of those, or no reason at all, mean the turn ended: "stop".
    """
    return "length" if done_reason == "length" else "stop"


def _chat_finish(done_reason: object, *, calls: bool) -> str:
    # Tool calls turn only a "stop" into "tool_calls": a turn cut by the token limit may
    # have lost a call, and the client has to know it was cut (Ollama's FinishChunk agrees).
    reason = finish_reason(done_reason)
    return "tool_calls" if calls and reason == "stop" else reason


# --- requests ------------------------------------------------------------------------------


def _options(raw: Mapping[str, Any], max_tokens: object) -> dict[str, Any]:
    # Only what the client set: Ollama's defaults come from the model's Modelfile, and
    # filling in OpenAI's defaults here would silently override them.
    options = {name: raw[name] for name in _SAME_OPTIONS if raw.get(name) is not None}
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = raw.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif stop is not None:
        options["stop"] = list(stop)
    return options


def _one_choice(raw: Mapping[str, Any], *names: str) -> None:
    for name in names:
        value = raw.get(name)
        if value is not None and value != 1:
            raise OpenAIError.invalid_request(
                f"{name}={value} asks for several choices, which Ollama cannot give",
                param=name,
                hint=f"leave {name} out or set it to 1, and send several requests instead",
            )


_DATA_URL_PREFIXES = ("data:image/", "data:;base64,")


def _image(url: str, param: str) -> str:
    """A data: URL's base64 payload; Ollama takes images inline and cannot fetch URLs."""
    head, comma, payload = url.partition(",")
    if url.startswith(_DATA_URL_PREFIXES) and comma and head.endswith(";base64"):
        return payload
    raise OpenAIError.invalid_request(
        f"{param} is not a base64 data: URL; the ollama provider cannot fetch images",
        param=param,
        hint="send the image inline as data:image/png;base64,<...>",
    )


def _message_content(content: object, param: str) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type")
        if kind == "text":
            texts.append(part["text"])
        elif kind == "image_url":
            image = part["image_url"]
            url = image["url"] if isinstance(image, dict) else image
            images.append(_image(url, f"{param}[{j}].image_url.url"))
        else:
            raise OpenAIError.invalid_request(
                f"{param}[{j}] is a {kind!r} part; the ollama provider takes only text and"
                " image_url parts",
                param=f"{param}[{j}].type",
            )
    # Parts are separate blocks of the same turn; a line break keeps words from running on.
    return "\n".join(texts), images


def _tool_calls_to_ollama(calls: list[Any], param: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        fn = call["function"]
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise OpenAIError.invalid_request(
                f"{param}[{j}].function.arguments must be a JSON object encoded as a string",
                param=f"{param}[{j}].function.arguments",
            )
        converted: dict[str, Any] = {"function": {"name": fn["name"], "arguments": arguments}}
        # Ollama's ToolCall has an id (and its templates may render it): keep the pairing of
        # a call with its result across turns.
        if isinstance(call.get("id"), str) and call["id"]:
            converted = {"id": call["id"], **converted}
        out.append(converted)
    return out


def _reasoning(message: Mapping[str, Any]) -> str:
    for name in _REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _messages_to_ollama(messages: list[Any]) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for role "tool" replies
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        content, images = _message_content(message.get("content"), f"messages[{i}].content")
        # Ollama has no "developer" role; it is OpenAI's newer name for "system".
        converted: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": content,
        }
        if images:
            converted["images"] = images
        calls = message.get("tool_calls")
        if calls:
            converted["tool_calls"] = _tool_calls_to_ollama(calls, f"messages[{i}].tool_calls")
            for call in calls:
                if isinstance(call.get("id"), str):
                    tool_names[call["id"]] = call["function"]["name"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("name") or tool_names.get(
                call_id if isinstance(call_id, str) else ""
            )
            if name:
                converted["tool_name"] = name
            if isinstance(call_id, str) and call_id:
                converted["tool_call_id"] = call_id
        # An earlier turn's reasoning goes back as Ollama's `thinking`: templates of models
        # that think between tool calls render it, and the model needs it to carry on.
        thinking = _reasoning(message)
        if thinking:
            converted["thinking"] = thinking
        out.append(converted)
    return out


def _format(response_format: object) -> object:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    return None


def _think(effort: object) -> bool | str | None:
    if effort is None or effort == "":  # unset, as Ollama's own OpenAI layer reads ""
        return None
    think = _THINK.get(effort) if isinstance(effort, str) else None
    if think is None:
        raise OpenAIError.invalid_request(
            f"reasoning_effort={effort!r} is not an effort the ollama provider knows",
            param="reasoning_effort",
            hint="use one of " + ", ".join(_THINK),
        )
    return think


def chat_to_ollama(req_raw: Mapping[str, Any]) -> dict[str, Any]:
    """A validated /v1/chat/completions body as an /api/chat body.

    ``keep_alive`` stays unset so the Ollama server's own setting applies. Parameters that
    Ollama has no equivalent for (logit_bias, user, parallel_tool_calls) are dropped;
    ``tool_choice: "none"`` drops the tools, other tool choices are up to the model.
    ``logprobs`` and ``top_logprobs`` need Ollama 0.12.11 or later; older ones ignore them.
    """
    _one_choice(req_raw, "n")
    body: dict[str, Any] = {
        "model": req_raw["model"],
        "messages": _messages_to_ollama(req_raw["messages"]),
        # Ollama streams unless told otherwise; OpenAI does not.
        "stream": req_raw.get("stream") is True,
    }
    max_tokens = req_raw.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = req_raw.get("max_tokens")
    options = _options(req_raw, max_tokens)
    if options:
        body["options"] = options
    fmt = _format(req_raw.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    if req_raw.get("tools") and req_raw.get("tool_choice") != "none":
        body["tools"] = req_raw["tools"]
    think = _think(req_raw.get("reasoning_effort"))
    if think is not None:
        body["think"] = think
    if req_raw.get("logprobs") is True:
        body["logprobs"] = True
        if req_raw.get("top_logprobs"):
            body["top_logprobs"] = req_raw["top_logprobs"]
    return body


def completion_to_ollama(req_raw: Mapping[str, Any]) -> dict[str, Any]:
    """A validated /v1/completions body as an /api/generate body (one text prompt).

    Like Ollama's own /v1/completions, the model's template applies (no ``raw``), so a
    ``suffix`` works for fill-in-the-middle models. ``logprobs: n`` asks for the chosen
    tokens' log probabilities and the ``n`` most likely ones at each position.
    """
    _one_choice(req_raw, "n", "best_of")
    if req_raw.get("echo"):
        raise OpenAIError.invalid_request(
            "echo is not supported by the ollama provider",
            param="echo",
            hint="leave echo out, or route the request to an openai-type provider",
        )
    prompt = req_raw["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise OpenAIError.invalid_request(
            "the ollama provider takes one text prompt, not several prompts or token ids",
            param="prompt",
            hint="send prompt as a string, one request per prompt",
        )
    body: dict[str, Any] = {
        "model": req_raw["model"],
        "prompt": prompt,
        "stream": req_raw.get("stream") is True,
    }
    if isinstance(req_raw.get("suffix"), str):
        body["suffix"] = req_raw["suffix"]
    options = _options(req_raw, req_raw.get("max_tokens"))
    if options:
        body["options"] = options
    logprobs = req_raw.get("logprobs")
    if logprobs is not None:
        body["logprobs"] = True
        if logprobs:
            body["top_logprobs"] = logprobs
    return body


def embeddings_to_ollama(req_raw: Mapping[str, Any]) -> dict[str, Any]:
    """A validated /v1/embeddings body as an /api/embed body. Ollama embeds text only."""
    value = req_raw["input"]
    if not (isinstance(value, str) or all(isinstance(v, str) for v in value)):
        raise OpenAIError.invalid_request(
            "the ollama provider embeds text, not token ids",
            param="input",
            hint="send input as a string or an array of strings",
        )
    texts = [value] if isinstance(value, str) else value
    for i, text in enumerate(texts):
        if not text:
            # Ollama answers "" with no embedding at all, which clients read as a bug.
            raise OpenAIError.invalid_request(
                "input must not be an empty string",
                param="input" if isinstance(value, str) else f"input[{i}]",
                hint="leave empty strings out of the input",
            )
    body: dict[str, Any] = {"model": req_raw["model"], "input": value}
    if req_raw.get("dimensions") is not None:
        body["dimensions"] = req_raw["dimensions"]
    return body


# --- whole responses -----------------------------------------------------------------------


def _object_from_provider(resp: object, what: str) -> dict[str, Any]:
    if not isinstance(resp, dict):
        raise OpenAIError.bad_gateway(
            f"the Ollama provider answered {what} with JSON that is not an object",
            code="bad_upstream_response",
        )
    if "error" in resp:
        raise OpenAIError.bad_gateway(f"the Ollama provider failed: {resp['error']}")
    return resp


def _usage(resp: Mapping[str, Any]) -> dict[str, int]:
    prompt = resp.get("prompt_eval_count")
    completion = resp.get("eval_count")
    prompt = prompt if isinstance(prompt, int) else 0
    completion = completion if isinstance(completion, int) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _token_logprob(entry: object) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    token, logprob = entry.get("token"), entry.get("logprob")
    if not isinstance(token, str) or not isinstance(logprob, int | float):
        return None
    raw = entry.get("bytes")
    # Ollama leaves bytes out for an empty token; OpenAI sends null when there are none.
    return {"token": token, "logprob": logprob, "bytes": raw if isinstance(raw, list) else None}


def _logprobs(raw: object) -> list[dict[str, Any]]:
    """Ollama's ``logprobs`` (api.Logprob: token, logprob, bytes, top_logprobs) as the
    entries of OpenAI's ``logprobs.content``; the shapes agree but for null and [] fill-ins."""
    out: list[dict[str, Any]] = []
    for entry in raw if isinstance(raw, list) else []:
        item = _token_logprob(entry)
        if item is None:
            continue
        tops = entry.get("top_logprobs")
        top_items = [_token_logprob(t) for t in tops] if isinstance(tops, list) else []
        item["top_logprobs"] = [t for t in top_items if t is not None]
        out.append(item)
    return out


def _chat_logprobs(raw: object) -> dict[str, Any] | None:
    content = _logprobs(raw)
    return {"content": content, "refusal": None} if content else None


def _completion_logprobs(raw: object, offset: int = 0) -> dict[str, Any] | None:
    """The legacy completions shape: parallel lists, tops as {token: logprob}. Offsets count
    the tokens' characters from ``offset``, the text already sent (there is no echo)."""
    entries = _logprobs(raw)
    if not entries:
        return None
    offsets: list[int] = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    tops = [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries]
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": tops if any(tops) else None,
        "text_offset": offsets,
    }


def _tool_calls_to_openai(calls: object, *, id: str, first: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        index = first + k
        arguments = fn.get("arguments")
        # Ollama sends arguments as an object, OpenAI as a JSON string. Newer Ollama sends
        # an id; older ones do not, so one is made from the completion id: unique, stable.
        call_id = call.get("id") or f"call_{id.removeprefix('chatcmpl-')}_{index}"
        out.append(
            {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments if arguments is not None else {}),
                },
            }
        )
    return out


def ollama_chat_to_openai(resp: object, *, id: str, created: int, model: str) -> dict[str, Any]:
    """A non-streamed /api/chat answer as a ``chat.completion``."""
    resp = _object_from_provider(resp, "/api/chat")
    message = resp.get("message")
    if not isinstance(message, dict):
        message = {}
    calls = _tool_calls_to_openai(message.get("tool_calls"), id=id)
    content = message.get("content") or ""
    out_message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI sends null content, not "", when the turn is only tool calls.
        "content": None if calls and not content else content,
    }
    if calls:
        for call in calls:
            del call["index"]  # only stream deltas carry an index
        out_message["tool_calls"] = calls
    if message.get("thinking"):
        out_message["reasoning_content"] = message["thinking"]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": _chat_logprobs(resp.get("logprobs")),
                "finish_reason": _chat_finish(resp.get("done_reason"), calls=bool(calls)),
            }
        ],
        "usage": _usage(resp),
    }


def ollama_generate_to_openai(resp: object, *, id: str, created: int, model: str) -> dict[str, Any]:
    """A non-streamed /api/generate answer as a ``text_completion``."""
    resp = _object_from_provider(resp, "/api/generate")
    text = resp.get("response")
    choice: dict[str, Any] = {
        "index": 0,
        "text": text if isinstance(text, str) else "",
        "logprobs": _completion_logprobs(resp.get("logprobs")),
        "finish_reason": finish_reason(resp.get("done_reason")),
    }
    # A thinking model thinks on /api/generate too, unless told not to; its reasoning goes
    # where the chat answer puts it rather than being lost.
    thinking = resp.get("thinking")
    if isinstance(thinking, str) and thinking:
        choice["reasoning_content"] = thinking
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": _usage(resp),
    }


def ollama_embed_to_openai(
    resp: object, *, model: str, encoding_format: str | None = None
) -> dict[str, Any]:
    """An /api/embed answer as an embeddings list; ``base64`` packs little-endian float32s."""
    resp = _object_from_provider(resp, "/api/embed")
    vectors = resp.get("embeddings")
    if not isinstance(vectors, list):
        raise OpenAIError.bad_gateway(
            "the Ollama provider's /api/embed answer has no embeddings list",
            code="bad_upstream_response",
        )
    data: list[dict[str, Any]] = []
    for i, vector in enumerate(vectors):
        embedding: object = vector
        if encoding_format == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            embedding = base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = resp.get("prompt_eval_count")
    tokens = tokens if isinstance(tokens, int) else 0
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _created(modified_at: object) -> int:
    if isinstance(modified_at, str):
        try:
            # Ollama writes RFC 3339 with nanoseconds; Python 3.11 reads them (to µs).
            return int(datetime.fromisoformat(modified_at).timestamp())
        except ValueError:
            pass
    return 0


def tags_to_models(tags: object, *, owned_by: str) -> list[dict[str, Any]]:
    """/api/tags as OpenAI model objects; ``created`` is the model's ``modified_at``."""
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        raise OpenAIError.bad_gateway(
            "the Ollama provider's /api/tags answer has no models list",
            code="bad_upstream_response",
        )
    out: list[dict[str, Any]] = []
    for entry in models:
        if not isinstance(entry, dict):
            continue
        name = entry.get("model") or entry.get("name")
        if not isinstance(name, str) or not name:
            continue
        out.append(
            {
                "id": name,
                "object": "model",
                "created": _created(entry.get("modified_at")),
                "owned_by": owned_by,
            }
        )
    return out


def parse_version(body: object) -> str:
    """The version string in an /api/version answer; a 502 error if there is none."""
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str) or not version:
        raise OpenAIError.bad_gateway(
            "the provider's /api/version answer has no version: is it an Ollama server?",
            code="bad_upstream_response",
        )
    return version


def _error_body(body: object) -> object:
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _error_text(body: object) -> str:
    body = _error_body(body)
    if isinstance(body, str):
        return body.strip()[:300] or "(empty body)"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return json.dumps(body)[:300]


# What /api/embed's 400s say when the request is at fault (server/routes.go, EmbedHandler):
# a body that does not decode, an input of the wrong type, or one too long for the model.
_EMBED_CLIENT_FAULTS = (
    "missing request body",
    "invalid input",
    "json:",
    "invalid character",
    "cannot unmarshal",
    "context length",
    "model is required",
    "does not support",
)


def _embed_server_fault(text: str) -> bool:
    """Whether an /api/embed 400 is really the server's failure.

    EmbedHandler answers 400 for any error of the embedding runner that is not already an
    HTTP status, so a runner that crashed or answered garbage ("do embedding request: ...
    EOF", "embedding contains NaN or Inf values") looks like a bad request. Gate decides by
    the message instead: the request's own faults are a short known list, and anything
    else is a 502, which clients (and Gate's own retry) may retry, on another provider too.
    """
    lowered = text.lower()
    return not any(marker in lowered for marker in _EMBED_CLIENT_FAULTS)


def ollama_error(
    status: int, body: object, *, model: str | None = None, op: str = "chat"
) -> OpenAIError:
    """An Ollama error answer (``{"error": "..."}`` with a status) as the error Gate sends.

    Client mistakes keep their status (400, 404 for a missing model, 429). Anything that
    is the provider's fault or its configuration's becomes a 5xx: a 401/403 from Ollama
    means the Ollama server may not use the model (a cloud model while it is not signed
    in), which the client cannot fix. ``op`` is the request's kind: "chat",
    "completions" or "embeddings" (whose 400s may be server faults, see above).
    """
    text = _error_text(body)
    said = f"the Ollama provider said: {text}"
    if status == 404:
        if "model" in text.lower():
            if model is None:
                return OpenAIError(
                    said,
                    status=404,
                    type="invalid_request_error",
                    param="model",
                    code="model_not_found",
                )
            return OpenAIError.model_not_found(
                model,
                hint=f"{said}; pull it with `ollama pull {model}`, or pick one from GET /v1/models",
            )
        return OpenAIError.bad_gateway(
            f"the provider has no such endpoint ({said})",
            hint="check that the provider's URL points at an Ollama server",
        )
    if status == 429:
        return OpenAIError.rate_limited(said)
    if status == 401:
        # Ollama asks for no key of its own; a 401 is for a cloud model on a server that is
        # not signed in to ollama.com, and it names the page to sign in on.
        parsed = _error_body(body)
        signin = parsed.get("signin_url") if isinstance(parsed, dict) else None
        where = f" (or open {signin})" if isinstance(signin, str) and signin else ""
        return OpenAIError.bad_gateway(
            f"the Ollama provider may not run this model ({said})",
            code="upstream_auth_failed",
            hint=f"cloud models need the Ollama server signed in: run `ollama signin` on the "
            f"machine that runs Ollama{where}, or use a local model",
        )
    if status == 403:
        # "ollama cloud is disabled" (OLLAMA_NO_CLOUD, or the server's own settings)
        return OpenAIError.bad_gateway(
            f"the Ollama provider refused the model ({said})",
            code="upstream_auth_failed",
            hint="use a local model, or allow cloud models on the Ollama server",
        )
    if status == 400 and op == "embeddings" and _embed_server_fault(text):
        return OpenAIError.bad_gateway(
            f"the Ollama provider failed to embed ({said})",
            hint="the model runner may have crashed or run out of memory; retry",
        )
    if 400 <= status < 500:
        return OpenAIError.invalid_request(said)
    if status == 503:
        return OpenAIError.no_provider(f"the Ollama provider is unavailable: {text}")
    if status == 504:
        return OpenAIError.upstream_timeout(f"the Ollama provider timed out: {text}")
    return OpenAIError.bad_gateway(said)


# --- streams -------------------------------------------------------------------------------


class _NDJSONStream:
    """Reads Ollama's NDJSON lines in any chunking and writes OpenAI SSE events.

    After the ``done`` line it emits the finishing chunk, then (with ``include_usage``)
    a usage chunk with empty choices, then ``data: [DONE]``. An ``{"error": ...}`` line, a
    line that is not JSON, or the end of the stream before ``done`` emits one
    ``data: {"error": {...}}`` event (what OpenAI sends, and what the ``openai`` package
    raises as APIError) and ends the stream without [DONE].
    """

    object_name = ""

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool = False) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.usage: dict[str, int] | None = None  # set from the done line, streamed or not
        self.finished = False
        self.error: OpenAIError | None = None  # set when the stream ended in an error event
        self.tokens_seen = False  # True once a chunk carrying generated output went out
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self.finished:
            return []
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        out: list[bytes] = []
        for line in lines:
            out.extend(self._line(line))
            if self.finished:
                break
        return out

    def close(self) -> list[bytes]:
        """Call at the end of the provider's body; reports a stream that ended early."""
        if self.finished:
            return []
        rest, self._buf = self._buf, b""
        out = self._line(rest)
        if not self.finished:
            out.extend(
                self._fail(
                    OpenAIError.bad_gateway(
                        "the provider closed the stream mid-response",
                        code="upstream_closed",
                        hint="the model server may have crashed or been restarted; retry",
                    )
                )
            )
        return out

    def _line(self, line: bytes) -> list[bytes]:
        line = line.strip()
        if not line:
            return []
        try:
            obj = json.loads(line)
        except ValueError:
            shown = line[:80].decode("utf-8", errors="replace")
            return self._fail(
                OpenAIError.bad_gateway(
                    f"the provider sent a line that is not JSON: {shown!r}",
                    code="bad_upstream_response",
                )
            )
        if not isinstance(obj, dict):
            return self._fail(
                OpenAIError.bad_gateway(
                    "the provider sent a JSON line that is not an object",
                    code="bad_upstream_response",
                )
            )
        if "error" in obj:
            return self._fail(
                OpenAIError.bad_gateway(
                    f"the provider failed mid-stream: {_error_text(obj)}", code="upstream_error"
                )
            )
        return self._translate(obj)

    def _fail(self, error: OpenAIError) -> list[bytes]:
        self.finished = True
        self.error = error
        return [encode_json(error.body())]

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": self.object_name,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            # With include_usage, OpenAI puts "usage": null on every chunk but the last.
            chunk["usage"] = usage
        return encode_json(chunk)

    def _finish(self, obj: Mapping[str, Any], last_choice: dict[str, Any]) -> list[bytes]:
        self.finished = True
        self.usage = _usage(obj)
        out = [self._chunk([last_choice])]
        if self.include_usage:
            out.append(self._chunk([], self.usage))
        out.append(DONE)
        return out

    def _translate(self, obj: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError


class OllamaChatStream(_NDJSONStream):
    """An /api/chat NDJSON stream as ``chat.completion.chunk`` SSE events.

    The first chunk carries ``role: assistant``; tool calls become ``tool_calls`` deltas
    and make a "stop" finish reason "tool_calls"; Ollama's ``thinking`` becomes
    ``reasoning_content``, and a line's ``logprobs`` its chunk's ``logprobs.content``.
    """

    object_name = "chat.completion.chunk"

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool = False) -> None:
        super().__init__(id=id, created=created, model=model, include_usage=include_usage)
        self._role_sent = False
        self._calls = 0

    def _translate(self, obj: dict[str, Any]) -> list[bytes]:
        message = obj.get("message")
        message = message if isinstance(message, dict) else {}
        delta: dict[str, Any] = {}
        if not self._role_sent:
            delta["role"] = "assistant"
        content = message.get("content")
        if isinstance(content, str) and content:
            delta["content"] = content
        thinking = message.get("thinking")
        if isinstance(thinking, str) and thinking:
            delta["reasoning_content"] = thinking
        calls = _tool_calls_to_openai(message.get("tool_calls"), id=self.id, first=self._calls)
        if calls:
            delta["tool_calls"] = calls
            self._calls += len(calls)
        # Ollama may send a line with logprobs alone (while it holds back a tool call's text).
        logprobs = _chat_logprobs(obj.get("logprobs"))
        out: list[bytes] = []
        if delta or logprobs:  # delta is never empty before the role went out
            if not self._role_sent:
                delta.setdefault("content", "")
            self.tokens_seen |= bool(content or thinking or calls)
            self._role_sent = True
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            if logprobs is not None:
                choice["logprobs"] = logprobs
            out.append(self._chunk([choice]))
        if obj.get("done") is True:
            reason = _chat_finish(obj.get("done_reason"), calls=self._calls > 0)
            out.extend(self._finish(obj, {"index": 0, "delta": {}, "finish_reason": reason}))
        return out


class OllamaGenerateStream(_NDJSONStream):
    """An /api/generate NDJSON stream as ``text_completion`` SSE events; ``thinking``
    becomes a chunk's ``reasoning_content`` (with empty text), as in the whole answer."""

    object_name = "text_completion"

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool = False) -> None:
        super().__init__(id=id, created=created, model=model, include_usage=include_usage)
        self._offset = 0  # characters of the tokens given logprobs so far, for text_offset

    def _translate(self, obj: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        text = obj.get("response")
        text = text if isinstance(text, str) else ""
        thinking = obj.get("thinking")
        thinking = thinking if isinstance(thinking, str) else ""
        logprobs = _completion_logprobs(obj.get("logprobs"), self._offset)
        if logprobs is not None:
            self._offset = logprobs["text_offset"][-1] + len(logprobs["tokens"][-1])
        if text or thinking or logprobs:
            self.tokens_seen |= bool(text or thinking)
            choice = self._choice(text, None, logprobs)
            if thinking:
                choice["reasoning_content"] = thinking
            out.append(self._chunk([choice]))
        if obj.get("done") is True:
            out.extend(self._finish(obj, self._choice("", finish_reason(obj.get("done_reason")))))
        return out

    @staticmethod
    def _choice(
        text: str, reason: str | None, logprobs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": reason}
