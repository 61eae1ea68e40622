"""JSON-RPC 2.0 dispatch: requests, batches, notifications and the error codes we answer with."""

from __future__ import annotations

__all__ = (
    "Dispatcher",
    "InvalidParams",
    "Method",
    "Reply",
)

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from gate_runner.components.control.contract import MethodContract
from gate_runner.errors import ConflictError, GateError, SpecError
from gate_runner.wire.jsonrpc import (
    CONFLICT,
    GATE_ERROR,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NEEDS_WEBSOCKET,
    PARSE_ERROR,
    SPEC_INVALID,
)

log = logging.getLogger(__name__)

Method = Callable[[dict[str, Any]], Awaitable[Any]]
Reply = dict[str, Any] | list[dict[str, Any]] | None


class InvalidParams(Exception):
    """Raised by a method when its params pass the schema but still make no sense
    (a name that is not there, a range the schema cannot say)."""


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(params)"


class Dispatcher:
    """Turns a JSON-RPC body into a reply. ``methods`` are the handlers, checked against
    their contracts: params are validated before a handler runs, so a handler sees only
    params of the documented shape."""

    def __init__(self, methods: Mapping[str, Method], contracts: Iterable[MethodContract]) -> None:
        self._methods = dict(methods)
        self._contracts = {c.name: c for c in contracts}
        self._validators = {
            name: Draft202012Validator(dict(c.params)) for name, c in self._contracts.items()
        }
        missing = {c.name for c in self._contracts.values() if not c.websocket_only} - set(
            self._methods
        )
        unknown = set(self._methods) - set(self._contracts)
        if missing or unknown:
            raise ValueError(f"methods without handlers {missing}, without contracts {unknown}")

    async def handle_bytes(
        self, body: bytes | str, *, session: Mapping[str, Method] | None = None
    ) -> Reply:
        """The reply for ``body``: an object, a batch list, or None when nothing is to be
        sent (only notifications). ``session`` holds the methods only a WebSocket has."""
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(None, PARSE_ERROR, "Parse error: the body is not valid JSON")
        if isinstance(message, list):
            if not message:
                return _error(None, INVALID_REQUEST, "Invalid Request: empty batch")
            replies = [await self.handle_one(m, session=session) for m in message]
            return [r for r in replies if r is not None] or None
        return await self.handle_one(message, session=session)

    async def handle_one(
        self, message: Any, *, session: Mapping[str, Method] | None = None
    ) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            return _error(None, INVALID_REQUEST, "Invalid Request: not an object")
        id_ = message.get("id")
        valid_id = id_ is None or isinstance(id_, str | int) and not isinstance(id_, bool)
        if isinstance(id_, float):
            valid_id = math.isfinite(id_)  # NaN would make the reply invalid JSON
        if not valid_id:
            return _error(
                None, INVALID_REQUEST, "Invalid Request: id must be a string, number or null"
            )
        if message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
            return _error(
                id_, INVALID_REQUEST, 'Invalid Request: need "jsonrpc": "2.0" and a string "method"'
            )
        params = message.get("params", {})
        if not isinstance(params, dict | list):
            return _error(
                id_, INVALID_REQUEST, "Invalid Request: params must be an object or an array"
            )
        reply = await self._call(id_, message["method"], params, session)
        return None if "id" not in message else reply

    async def _call(
        self,
        id_: Any,
        name: str,
        params: dict[str, Any] | list[Any],
        session: Mapping[str, Method] | None,
    ) -> dict[str, Any]:
        contract = self._contracts.get(name)
        if contract is None:
            return _error(id_, METHOD_NOT_FOUND, f"Method not found: {name}")
        if contract.websocket_only:
            if session is None or name not in session:
                return _error(
                    id_,
                    NEEDS_WEBSOCKET,
                    f"{name} needs a connection to deliver to",
                    {"hint": "call it on the WebSocket /rpc/ws"},
                )
            method = session[name]
        else:
            method = self._methods[name]
        if isinstance(params, list):
            return _error(
                id_,
                INVALID_PARAMS,
                "Invalid params: pass params by name (an object), not by position",
                {"errors": [{"path": "(params)", "message": "expected an object"}]},
            )
        problems = sorted(self._validators[name].iter_errors(params), key=_where)
        if problems:
            # A message quotes the bad value, which may be a megabyte of it.
            errors = [{"path": _where(p), "message": _short(p.message)} for p in problems]
            first = errors[0]
            return _error(
                id_,
                INVALID_PARAMS,
                f"Invalid params: {first['path']}: {first['message']}",
                {"errors": errors},
            )
        try:
            result = await method(params)
        except InvalidParams as e:
            return _error(
                id_,
                INVALID_PARAMS,
                f"Invalid params: {e}",
                {"errors": [{"path": "(params)", "message": str(e)}]},
            )
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
