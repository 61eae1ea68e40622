"""Translation between OpenAI's API and llama-cpp-python's: request bodies to the keyword
arguments of create_chat_completion, create_completion and create_embedding, their outputs
and exceptions back to OpenAI's shapes."""

from __future__ import annotations

__all__ = (
    "base64_floats",
    "chat_messages",
    "chat_params",
    "check_dimensions",
    "completion_params",
    "completion_to_openai",
    "embedding_inputs",
    "embeddings_to_openai",
    "llama_error",
    "logit_bias",
    "stream_chunk",
    "usage",
    "usage_chunk",
)

import base64
import re
import struct
from collections.abc import Mapping
from typing import Any, cast

from gate_runner.wire.openai import ChatRequest, CompletionRequest, OpenAIError

_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")

# Request fields passed to llama-cpp-python under the same name; the others are either
# translated below, refused with a 400, or have no meaning in-process (user, stream_options).
_SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
_CHAT_OPTIONS = (
    *_SAMPLING,
    "tools",
    "tool_choice",
    "response_format",
    "functions",
    "function_call",
)
_COMPLETION_OPTIONS = (*_SAMPLING, "echo", "suffix")


# --- requests ------------------------------------------------------------------------------


def _only_one(raw: Mapping[str, Any], name: str) -> None:
    value = raw.get(name)
    if value is not None and value != 1:
        raise OpenAIError.invalid_request(
            f"{name} must be 1 for the llamacpp provider, not {value}",
            param=name,
            hint="send separate requests for more choices",
        )


def _no_logprobs(raw: Mapping[str, Any]) -> None:
    if raw.get("logprobs") not in (None, False):
        # llama.cpp returns them only for a model loaded with logits for every position,
        # which costs n_ctx x n_vocab floats (1.2 GB for a 150k vocabulary).
        raise OpenAIError.invalid_request(
            "logprobs are not available from the llamacpp provider",
            param="logprobs",
            hint="leave logprobs out, or serve the model with llama_cpp.server --logits_all",
        )


def chat_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: string content, and no "developer" role."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        copy = dict(message)
        if copy.get("role") == "developer":
            copy["role"] = "system"  # OpenAI's newer name for it; templates know "system"
        content = copy.get("content")
        if content is None:
            copy["content"] = ""  # templates concatenate it; an assistant turn with tool_calls
        elif isinstance(content, list):
            texts: list[str] = []
            for j, part in enumerate(content):
                if part.get("type") != "text":
                    raise OpenAIError.invalid_request(
                        f"messages[{i}].content[{j}] is a {part.get('type')!r} part; the "
                        "llamacpp provider serves text-only models",
                        param=f"messages[{i}].content[{j}].type",
                    )
                texts.append(part["text"])
            # Parts are separate blocks of the same turn; a line break keeps words apart.
            copy["content"] = "\n".join(texts)
        out.append(copy)
    return out


def chat_params(parsed: ChatRequest) -> dict[str, Any]:
    """create_chat_completion's arguments for a chat request, but for ``model`` and
    ``logit_bias``, which need the loaded model. Raises OpenAIError for what it cannot do."""
    raw = parsed.raw
    _only_one(raw, "n")
    _no_logprobs(raw)
    params = {k: raw[k] for k in _CHAT_OPTIONS if raw.get(k) is not None}
    params["messages"] = chat_messages(raw["messages"])
    if parsed.max_tokens is not None:
        params["max_tokens"] = parsed.max_tokens
    return params


def completion_params(parsed: CompletionRequest) -> dict[str, Any]:
    """create_completion's arguments for a completions request, as chat_params does."""
    raw = parsed.raw
    _only_one(raw, "n")
    _only_one(raw, "best_of")
    _no_logprobs(raw)
    params = {k: raw[k] for k in _COMPLETION_OPTIONS if raw.get(k) is not None}
    prompt = raw["prompt"]
    # validate_completion allows a string, token ids, or an array of either.
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
        if len(prompt) > 1:
            raise OpenAIError.invalid_request(
                f"prompt has {len(prompt)} prompts; the llamacpp provider completes one per "
                "request",
                param="prompt",
                hint="send the prompts as separate requests",
            )
        prompt = prompt[0]
    params["prompt"] = prompt
    if parsed.max_tokens is not None:
        params["max_tokens"] = parsed.max_tokens
    return params


def logit_bias(value: Mapping[str, Any], n_vocab: int) -> dict[int, float]:
    """OpenAI's ``logit_bias`` (token ids as strings) as llama-cpp-python's (ints)."""
    bias: dict[int, float] = {}
    for key, weight in value.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if not 0 <= token < n_vocab:
            raise OpenAIError.invalid_request(
                f"logit_bias has the key {key!r}, which is not a token id of this model "
                f"(0 to {n_vocab - 1})",
                param="logit_bias",
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (-100 <= weight <= 100)
        ):
            raise OpenAIError.invalid_request(
                f"logit_bias[{key!r}] must be a number from -100 to 100", param="logit_bias"
            )
        bias[token] = float(weight)
    return bias


def embedding_inputs(raw: Mapping[str, Any]) -> list[str]:
    """The texts to embed: create_embedding takes text, not token ids."""
    value = raw["input"]
    inputs = [value] if isinstance(value, str) else value
    if not all(isinstance(v, str) for v in inputs):
        raise OpenAIError.invalid_request(
            "input must be text for the llamacpp provider, not token ids",
            param="input",
            hint="send the text itself",
        )
    if any(not v for v in inputs):
        raise OpenAIError.invalid_request("input must not contain empty strings", param="input")
    return cast(list[str], inputs)


def check_dimensions(raw: Mapping[str, Any], n_embd: int) -> None:
    """Refuse ``dimensions`` other than the model's own: llama.cpp cannot shorten vectors."""
    dimensions = raw.get("dimensions")
    if dimensions is not None and dimensions != n_embd:
        raise OpenAIError.invalid_request(
            f"dimensions must be {n_embd} for this model, not {dimensions}",
            param="dimensions",
            hint="leave dimensions out; llama.cpp cannot shorten embeddings",
        )


# --- responses -----------------------------------------------------------------------------


def base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def completion_to_openai(out: dict[str, Any], *, request_id: str) -> dict[str, Any]:
    """A whole chat completion or completion of llama-cpp-python's under the request's id
    (changed in place)."""
    out["id"] = request_id
    return out


def embeddings_to_openai(out: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """create_embedding's output in the request's ``encoding_format`` (changed in place)."""
    if raw.get("encoding_format") == "base64":
        for item in out["data"]:
            item["embedding"] = base64_floats(item["embedding"])
    return out


def usage(prompt_tokens: int | None, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage object; llama-cpp-python reports none in streams."""
    prompt = prompt_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def stream_chunk(
    chunk: dict[str, Any], *, request_id: str, model: str, include_usage: bool
) -> dict[str, Any]:
    """One streamed chunk of llama-cpp-python's as Gate answers it (changed in place): the
    request's id, the model name the client asked for."""
    chunk["id"] = request_id
    chunk["model"] = model
    if include_usage:
        chunk["usage"] = None  # as OpenAI sends it on every chunk but the last
    return chunk


def usage_chunk(
    *, request_id: str, object_name: str, created: int, model: str, usage: dict[str, int]
) -> dict[str, Any]:
    """The last chunk of a stream whose client asked for ``include_usage``."""
    return {
        "id": request_id,
        "object": object_name,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def llama_error(error: Exception, *, provider: str, param: str | None, max_ctx: int) -> OpenAIError:
    """What an exception from llama-cpp-python means for the client. ``max_ctx``: the most
    context the provider opens a model with, for the hint of an overflow."""
    overflow = _OVERFLOW.search(str(error))
    if overflow:
        return OpenAIError.invalid_request(
            f"the prompt is {overflow[1]} tokens, more than the model's context window of "
            f"{overflow[2]}",
            param=param,
            code="context_length_exceeded",
            hint=f"shorten it; the llamacpp provider opens models with at most {max_ctx} "
            "tokens of context",
        )
    from jinja2 import TemplateError  # a dependency of llama-cpp-python

    if isinstance(error, ValueError | TypeError | KeyError | IndexError | TemplateError):
        # Bad parameters or messages the model's chat template cannot render.
        return OpenAIError.invalid_request(f"llama.cpp cannot run this request: {error}")
    return OpenAIError.bad_gateway(
        f"provider {provider}: llama.cpp failed: {error}", code="engine_error"
    )
