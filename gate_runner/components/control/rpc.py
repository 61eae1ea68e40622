"""JSON-RPC 2.0 dispatch: requests, batches, notifications and the error codes we answer with."""

from __future__ import annotations

__all__ = (
    "CONFLICT",
    "GATE_ERROR",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SPEC_INVALID",
    "Dispatcher",
    "InvalidParams",
    "Method",
)

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gate_runner.errors import ConflictError, GateError, SpecError

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined codes (-32000..-32099):
SPEC_INVALID = -32000  # data: {"issues": [SpecIssue.to_dict(), ...]}
CONFLICT = -32001  # data: {"expected": int, "current": int}
GATE_ERROR = -32002  # data: {"hint": str | None}

Method = Callable[[dict[str, Any]], Awaitable[Any]]


class InvalidParams(Exception):
    """Raised by a method when its params are missing or of the wrong type."""


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


class Dispatcher:
    def __init__(self, methods: dict[str, Method]) -> None:
        self._methods = methods

    async def handle_bytes(self, body: bytes) -> dict[str, Any] | list[dict[str, Any]] | None:
        """Returns the response object, a batch list, or None when nothing is to be sent."""
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return _error(None, PARSE_ERROR, "Parse error: the body is not valid JSON")
        if isinstance(message, list):
            if not message:
                return _error(None, INVALID_REQUEST, "Invalid Request: empty batch")
            responses = [r for r in [await self.handle_one(m) for m in message] if r is not None]
            return responses or None
        return await self.handle_one(message)

    async def handle_one(self, message: Any) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            return _error(None, INVALID_REQUEST, "Invalid Request: not an object")
        id_ = message.get("id")
        is_notification = "id" not in message
        if (
            message.get("jsonrpc") != "2.0"
            or not isinstance(message.get("method"), str)
            or (id_ is not None and not isinstance(id_, str | int | float))
            or isinstance(id_, bool)
        ):
            return _error(
                id_ if isinstance(id_, str | int) else None,
                INVALID_REQUEST,
                'Invalid Request: need jsonrpc "2.0", a string method and an id',
            )
        params = message.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            response = _error(id_, INVALID_PARAMS, "Invalid params: params must be an object")
            return None if is_notification else response
        response = await self._call(id_, message["method"], params)
        return None if is_notification else response

    async def _call(self, id_: Any, name: str, params: dict[str, Any]) -> dict[str, Any]:
        method = self._methods.get(name)
        if method is None:
            return _error(id_, METHOD_NOT_FOUND, f"Method not found: {name}")
        try:
            result = await method(params)
        except InvalidParams as e:
            return _error(id_, INVALID_PARAMS, f"Invalid params: {e}")
        except SpecError as e:
            return _error(id_, SPEC_INVALID, e.message, {"issues": [i.to_dict() for i in e.issues]})
        except ConflictError as e:
            return _error(id_, CONFLICT, str(e), {"expected": e.expected, "current": e.current})
        except GateError as e:
            return _error(id_, GATE_ERROR, e.message, {"hint": e.hint})
        except Exception:
            log.exception("rpc method %s failed", name)
            return _error(id_, INTERNAL_ERROR, "Internal error; see the node's log")
        return {"jsonrpc": "2.0", "result": result, "id": id_}
