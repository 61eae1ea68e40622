"""OpenAI's wire format at Gate's edge: the operations (one table), the error object and
its statuses, request validation for chat, completions and embeddings, and the
``model: "name@peer"`` target."""

from __future__ import annotations

__all__ = (
    "CHAT_ROLES",
    "ENDPOINTS",
    "ENDPOINT_BY_PATH",
    "NO_PROVIDER_HINT",
    "RETRYABLE_STATUS",
    "ChatRequest",
    "CompletionRequest",
    "Endpoint",
    "EmbeddingsRequest",
    "OpenAIError",
    "Operation",
    "error_response",
    "openai_error",
    "parse_model_target",
    "validate_chat",
    "validate_completion",
    "validate_embeddings",
)

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from gate_runner.errors import GateError

CHAT_ROLES = ("system", "user", "assistant", "tool", "developer")

Operation = Literal["chat", "completions", "embeddings"]
# Statuses that mean "this target cannot answer now": the router may try another one.
RETRYABLE_STATUS: Final = frozenset({502, 503, 504})
NO_PROVIDER_HINT: Final = (
    "start Ollama (port 11434) or LM Studio (port 1234), or add one under "
    "spec.providers.static in gate.yaml"
)

# A model name is one token: whitespace or control characters in it are a typo or a
# mangled client, and would not reach the same model at every provider.
_MODEL_MAX = 256
_BAD_MODEL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


class OpenAIError(GateError):
    """Raised for any request Gate answers with an error; it carries the HTTP status and
    OpenAI's error object. Make them with the class methods, which fix status and type.

    Error types: OpenAI itself sends ``invalid_request_error`` for 400 and 404, and also for
    401. Clients dispatch on the status (the ``openai`` package maps 401 to
    ``AuthenticationError``, 403 to ``PermissionDeniedError``, 429 to ``RateLimitError``),
    so Gate names the type after that class instead: ``authentication_error``,
    ``permission_error``, ``rate_limit_error``. Failures upstream of Gate (502, 503, 504) use
    ``api_error``, the type the ``openai`` package and Ollama's compatibility layer use for
    server-side failures, with a ``code`` that tells them apart.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        param: str | None = None,
        code: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}``; the message carries the hint so that clients show the fix."""
        return {
            "error": {
                "message": str(self),
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Headers the response must carry: ``Retry-After`` (whole seconds, rounded up)."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(0, math.ceil(self.retry_after)))}

    @classmethod
    def invalid_request(
        cls,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> OpenAIError:
        return cls(
            message, status=400, type="invalid_request_error", param=param, code=code, hint=hint
        )

    @classmethod
    def unauthorized(
        cls, message: str = "missing or invalid API key", *, hint: str | None = None
    ) -> OpenAIError:
        return cls(
            message,
            status=401,
            type="authentication_error",
            code="invalid_api_key",
            hint=hint or "send `Authorization: Bearer <key>` with a key this node accepts",
        )

    @classmethod
    def forbidden(
        cls, message: str, *, code: str | None = None, hint: str | None = None
    ) -> OpenAIError:
        return cls(message, status=403, type="permission_error", code=code, hint=hint)

    @classmethod
    def model_not_found(cls, model: str, *, hint: str | None = None) -> OpenAIError:
        return cls(
            f"the model `{model}` does not exist or you do not have access to it",
            status=404,
            type="invalid_request_error",
            param="model",
            code="model_not_found",
            hint=hint or "list the models this node can reach with GET /v1/models",
        )

    @classmethod
    def rate_limited(
        cls, message: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> OpenAIError:
        if hint is None and retry_after is not None:
            hint = f"retry after {max(0, math.ceil(retry_after))} s"
        return cls(
            message,
            status=429,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            hint=hint,
            retry_after=retry_after,
        )

    @classmethod
    def bad_gateway(
        cls, message: str, *, code: str = "upstream_error", hint: str | None = None
    ) -> OpenAIError:
        """The provider or peer answered, but with something Gate cannot pass on."""
        return cls(message, status=502, type="api_error", code=code, hint=hint)

    @classmethod
    def no_provider(cls, message: str, *, hint: str | None = None) -> OpenAIError:
        """Nothing can serve the request right now (all targets down or circuits open)."""
        return cls(message, status=503, type="api_error", code="no_provider_available", hint=hint)

    @classmethod
    def upstream_timeout(cls, message: str, *, hint: str | None = None) -> OpenAIError:
        return cls(message, status=504, type="api_error", code="upstream_timeout", hint=hint)

    @classmethod
    def internal(cls, message: str, *, hint: str | None = None) -> OpenAIError:
        """A bug in Gate itself; OpenAI calls its own failures ``server_error``."""
        return cls(message, status=500, type="server_error", hint=hint)


# -- the error boundary: every failure of a request, as the client sees it ------------------


def openai_error(failure: Exception) -> OpenAIError:
    """What a client is told of ``failure``, raised while serving its request before any of
    the response went out. The one boundary for the API and for requests from peers: an
    OpenAIError as it is, another GateError (which says what to fix) as a 500 with its
    words, and anything else as a 500 that names no internals (the node logs it)."""
    if isinstance(failure, OpenAIError):
        return failure
    if isinstance(failure, GateError):
        return OpenAIError.internal(failure.message, hint=failure.hint)
    return OpenAIError.internal(
        "the node failed to serve this request", hint="its log (`gate logs`) has the cause"
    )


def error_response(error: OpenAIError) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and JSON body of ``error``: the OpenAI shape, with Retry-After."""
    headers = [("content-type", "application/json"), *error.headers().items()]
    return error.status, headers, json.dumps(error.body()).encode()


def parse_model_target(model: str) -> tuple[str, str | None]:
    """Split ``"name@peer"`` into the model name and the peer to send it to.

    The peer is the part after the *last* ``@``, and only when it is non-empty and has no
    ``/`` or ``:``: a peer is a name, hex id or peer id, while ``@`` inside a model name
    is followed by a tag or digest (``org/model@sha256:ab12``) or a path. A name whose
    last ``@`` would otherwise read as a peer (``org/model@v2``) is written with a
    trailing ``@`` to say "no peer": ``org/model@v2@`` means model ``org/model@v2`` on
    any node.
    """
    name, at, peer = model.rpartition("@")
    if not at:
        return model, None
    if not peer:
        if not name:
            raise OpenAIError.invalid_request(
                "model `@` names neither a model nor a peer", param="model"
            )
        return name, None
    if "/" in peer or ":" in peer:
        return model, None
    if not name:
        raise OpenAIError.invalid_request(
            f"model `{model}` names the peer `{peer}` but no model",
            param="model",
            hint=f"write it as `<model>@{peer}`",
        )
    return name, peer


@dataclass(frozen=True)
class _Validated:
    """What Gate needs to route a request, next to the body it passes on untouched."""

    model: str  # without any "@peer"
    peer: str | None
    raw: Mapping[str, Any]

    def body_for(self, model: str) -> dict[str, Any]:
        """The request body with ``model`` set, for a target that knows it by that name."""
        body = dict(self.raw)
        body["model"] = model
        return body


@dataclass(frozen=True)
class ChatRequest(_Validated):
    """A checked /v1/chat/completions request."""

    stream: bool
    include_usage: bool
    max_tokens: int | None  # max_completion_tokens when given, else max_tokens


@dataclass(frozen=True)
class CompletionRequest(_Validated):
    """A checked /v1/completions request."""

    stream: bool
    include_usage: bool
    max_tokens: int | None


@dataclass(frozen=True)
class EmbeddingsRequest(_Validated):
    """A checked /v1/embeddings request."""


# --- field checks --------------------------------------------------------------------------
# Each takes the value and its param path and raises OpenAIError naming that path.

_Check = Callable[[object, str], object]


def _describe(value: object) -> str:
    """The value as a reader would name it: JSON spelling for scalars, the kind otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad(param: str, expected: str, value: object) -> OpenAIError:
    return OpenAIError.invalid_request(
        f"{param} must be {expected}, not {_describe(value)}", param=param
    )


def _is_int(value: object) -> bool:
    # JSON true is a Python int: reject it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(low: int, high: int | None = None) -> _Check:
    if high is not None:
        what = f"an integer from {low} to {high}"
    elif low == 0:
        what = "a non-negative integer"
    else:
        what = f"an integer of at least {low}"

    def check(value: object, param: str) -> None:
        if not (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        ):
            raise _bad(param, what, value)

    return check


def _integer(value: object, param: str) -> None:
    if not _is_int(value):
        raise _bad(param, "an integer", value)


def _number_between(low: float, high: float) -> _Check:
    def check(value: object, param: str) -> None:
        if not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and low <= value <= high
        ):
            raise _bad(param, f"a number from {low:g} to {high:g}", value)

    return check


def _bool(value: object, param: str) -> None:
    if not isinstance(value, bool):
        raise _bad(param, "true or false", value)


def _string(value: object, param: str) -> None:
    if not isinstance(value, str):
        raise _bad(param, "a string", value)


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(param, "an object", value)
    return value


def _stop(value: object, param: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad(param, "a string or an array of up to 4 strings", value)
    if len(value) > 4:
        raise OpenAIError.invalid_request(
            f"{param} may hold at most 4 sequences, not {len(value)}: drop some", param=param
        )


def _stream_options(value: object, param: str) -> None:
    options = _object(value, param)
    if options.get("include_usage") is not None:
        _bool(options["include_usage"], f"{param}.include_usage")


def _one_of(*choices: str) -> _Check:
    def check(value: object, param: str) -> None:
        if value not in choices:
            raise OpenAIError.invalid_request(
                f"{param} must be one of {', '.join(choices)}, not {value!r}", param=param
            )

    return check


def _tools(value: object, param: str) -> None:
    if not isinstance(value, list):
        raise _bad(param, "an array of tools", value)
    for i, tool in enumerate(value):
        at = f"{param}[{i}]"
        tool = _object(tool, at)
        if tool.get("type") == "function" or "function" in tool:
            name = _object(tool.get("function"), f"{at}.function").get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"{at}.function.name", "a non-empty string", name)


def _response_format(value: object, param: str) -> None:
    fmt = _object(value, param)
    _one_of("text", "json_object", "json_schema")(fmt.get("type"), f"{param}.type")
    if fmt.get("type") == "json_schema":
        _object(fmt.get("json_schema"), f"{param}.json_schema")


# Checks for optional parameters; null always means "use the default".
_SAMPLING: dict[str, _Check] = {
    "max_tokens": _int_at_least(0),
    "temperature": _number_between(0, 2),
    "top_p": _number_between(0, 1),
    "n": _int_at_least(1),
    "stream": _bool,
    "stream_options": _stream_options,
    "stop": _stop,
    "presence_penalty": _number_between(-2, 2),
    "frequency_penalty": _number_between(-2, 2),
    "seed": _integer,
    "logit_bias": _object,
    "user": _string,
}

_CHAT_PARAMS: dict[str, _Check] = {
    **_SAMPLING,
    "max_completion_tokens": _int_at_least(0),
    "logprobs": _bool,
    "top_logprobs": _int_at_least(0, 20),
    "tools": _tools,
    "parallel_tool_calls": _bool,
    "response_format": _response_format,
}

_COMPLETION_PARAMS: dict[str, _Check] = {
    **_SAMPLING,
    "logprobs": _int_at_least(0, 5),
    "echo": _bool,
    "best_of": _int_at_least(1),
    "suffix": _string,
}

_EMBEDDINGS_PARAMS: dict[str, _Check] = {
    "encoding_format": _one_of("float", "base64"),
    "dimensions": _int_at_least(1),
    "user": _string,
}


def _body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OpenAIError.invalid_request(
            f"the request body must be a JSON object, not {_describe(body)}",
            hint='send {"model": ..., ...} with Content-Type: application/json',
        )
    return body


def _model(body: dict[str, Any]) -> tuple[str, str | None]:
    model = body.get("model")
    if model is None:
        raise OpenAIError.invalid_request(
            "model is required", param="model", hint="name one of the models in GET /v1/models"
        )
    if not isinstance(model, str) or not model:
        raise _bad("model", "a non-empty string", model)
    bad = _BAD_MODEL_CHARS.search(model)
    if len(model) > _MODEL_MAX or bad:
        shown = model if len(model) <= 60 else model[:57] + "..."
        if len(model) > _MODEL_MAX:
            why = f"it is {len(model)} characters long, over the limit of {_MODEL_MAX}"
        elif bad and bad.group().isspace():
            why = "it has whitespace in it"
        else:
            why = "it has control characters in it"
        raise OpenAIError.invalid_request(
            f"model {shown!r} is not a model name: {why}",
            param="model",
            hint="use an id from GET /v1/models, optionally followed by @<peer>",
        )
    return parse_model_target(model)


def _params(body: dict[str, Any], checks: dict[str, _Check]) -> None:
    # Over the body's keys, not the table's: a request sets a few of the ~25 parameters.
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None:
            check(value, name)


def _content_parts(parts: list[Any], param: str) -> None:
    for j, value in enumerate(parts):
        at = f"{param}[{j}]"
        part = _object(value, at)
        kind = part.get("type")
        if not isinstance(kind, str):
            raise _bad(f"{at}.type", 'a string such as "text" or "image_url"', kind)
        if kind == "text":
            _string(part.get("text"), f"{at}.text")
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _bad(f"{at}.image_url.url", "a string (an https: or data: URL)", url)


def _tool_calls(calls: object, param: str) -> None:
    if not isinstance(calls, list):
        raise _bad(param, "an array of tool calls", calls)
    for j, call in enumerate(calls):
        at = f"{param}[{j}]"
        fn = _object(_object(call, at).get("function"), f"{at}.function")
        _string(fn.get("name"), f"{at}.function.name")
        _string(fn.get("arguments"), f"{at}.function.arguments")


def _messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise OpenAIError.invalid_request(
            "messages is required",
            param="messages",
            hint='send a non-empty array such as [{"role": "user", "content": "Hi"}]',
        )
    if not isinstance(messages, list):
        raise _bad("messages", "an array of message objects", messages)
    if not messages:
        raise OpenAIError.invalid_request(
            "messages must not be empty: send at least one message",
            param="messages",
            hint='for example [{"role": "user", "content": "Hi"}]',
        )
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(at, 'an object such as {"role": "user", "content": "Hi"}', message)
        role = message.get("role")
        if not isinstance(role, str):
            raise _bad(f"{at}.role", f"one of {', '.join(CHAT_ROLES)}", role)
        if role not in CHAT_ROLES:
            raise OpenAIError.invalid_request(
                f"{at}.role must be one of {', '.join(CHAT_ROLES)}, not {role!r}",
                param=f"{at}.role",
            )
        content = message.get("content")
        calls = message.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise OpenAIError.invalid_request(
                    f"{at}.tool_calls is only allowed on assistant messages, not {role!r} ones",
                    param=f"{at}.tool_calls",
                )
            _tool_calls(calls, f"{at}.tool_calls")
        if content is None:
            # Only an assistant turn that calls tools (or refuses) may leave content out.
            if role == "assistant" and (
                calls or message.get("function_call") or message.get("refusal")
            ):
                pass
            elif role == "assistant":
                raise OpenAIError.invalid_request(
                    f"{at}.content is required: an assistant message needs content or tool_calls",
                    param=f"{at}.content",
                )
            else:
                raise OpenAIError.invalid_request(
                    f"{at}.content is required for role {role!r}",
                    param=f"{at}.content",
                    hint="give a string or an array of content parts",
                )
        elif isinstance(content, list):
            _content_parts(content, f"{at}.content")
        elif not isinstance(content, str):
            raise _bad(f"{at}.content", "a string or an array of content parts", content)
        if role == "tool":
            _string(message.get("tool_call_id"), f"{at}.tool_call_id")


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream") is True
    options = body.get("stream_options")
    # OpenAI refuses stream_options without stream; Gate is lenient and ignores them.
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return stream, include_usage


def validate_chat(body: object) -> ChatRequest:
    """Check a /v1/chat/completions body; raises a 400 OpenAIError naming the bad param."""
    body = _body(body)
    model, peer = _model(body)
    _messages(body)
    _params(body, _CHAT_PARAMS)
    stream, include_usage = _stream_flags(body)
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    return ChatRequest(
        model=model,
        peer=peer,
        raw=body,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
    )


def _prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise OpenAIError.invalid_request(
            "prompt is required", param="prompt", hint='send a string, e.g. "prompt": "Once upon"'
        )
    if isinstance(prompt, str):
        return
    ok = (
        isinstance(prompt, list)
        and bool(prompt)
        and (
            all(isinstance(p, str) for p in prompt)
            or all(_is_int(p) for p in prompt)
            or all(isinstance(p, list) and p and all(_is_int(t) for t in p) for p in prompt)
        )
    )
    if not ok:
        raise _bad(
            "prompt",
            "a string, an array of strings, or an array of token ids (or of such arrays)",
            prompt,
        )


def validate_completion(body: object) -> CompletionRequest:
    """Check a /v1/completions body; raises a 400 OpenAIError naming the bad param."""
    body = _body(body)
    model, peer = _model(body)
    _prompt(body)
    _params(body, _COMPLETION_PARAMS)
    stream, include_usage = _stream_flags(body)
    return CompletionRequest(
        model=model,
        peer=peer,
        raw=body,
        stream=stream,
        include_usage=include_usage,
        max_tokens=body.get("max_tokens"),
    )


def validate_embeddings(body: object) -> EmbeddingsRequest:
    """Check a /v1/embeddings body; raises a 400 OpenAIError naming the bad param."""
    body = _body(body)
    model, peer = _model(body)
    value = body.get("input")
    if value is None:
        raise OpenAIError.invalid_request(
            "input is required", param="input", hint="send a string or an array of strings"
        )
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(v, str) for v in value)
            or all(_is_int(v) for v in value)
            or all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value)
        )
    )
    if not ok:
        raise _bad(
            "input",
            "a string, a non-empty array of strings, or token ids (or arrays of them)",
            value,
        )
    _params(body, _EMBEDDINGS_PARAMS)
    return EmbeddingsRequest(model=model, peer=peer, raw=body)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI operation as Gate serves and forwards it."""

    op: Operation
    path: str  # on Gate's API and over P2P: /v1/...
    validate: Callable[[object], ChatRequest | CompletionRequest | EmbeddingsRequest]
    id_prefix: str  # of the request ids Gate gives it, after OpenAI's own (chatcmpl-...)

    method: str = "POST"

    @property
    def upstream_path(self) -> str:
        """The path below an OpenAI-compatible base URL, which ends in /v1 already."""
        return self.path.removeprefix("/v1")


# The one table of what Gate serves: the API, the P2P side, the request log and the
# OpenAI-compatible backends all read it.
ENDPOINTS: Final[Mapping[Operation, Endpoint]] = {
    "chat": Endpoint("chat", "/v1/chat/completions", validate_chat, "chatcmpl-"),
    "completions": Endpoint("completions", "/v1/completions", validate_completion, "cmpl-"),
    "embeddings": Endpoint("embeddings", "/v1/embeddings", validate_embeddings, "embd-"),
}
ENDPOINT_BY_PATH: Final[Mapping[str, Endpoint]] = {e.path: e for e in ENDPOINTS.values()}
