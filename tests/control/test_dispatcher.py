"""The dispatcher on its own, with handlers written here: what only a broken method or a
mismatched table can show."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from gate_runner.components.control.contract import MethodContract
from gate_runner.components.control.rpc import Dispatcher

EMPTY = {"type": "object", "properties": {}, "additionalProperties": False}


def dispatcher(handler: Any) -> Dispatcher:
    return Dispatcher({"t.m": handler}, [MethodContract("t.m", "test", EMPTY, {})])


def test_an_exception_in_a_method_is_an_internal_error_and_the_log_has_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(params: dict[str, Any]) -> Any:
        raise KeyError("oops")

    reply = trio.run(dispatcher(broken).handle_bytes, b'{"jsonrpc":"2.0","method":"t.m","id":7}')
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error; see the node's log"},
        "id": 7,
    }
    assert "rpc method t.m failed" in caplog.text and "oops" in caplog.text


def test_a_contract_without_a_handler_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="without handlers"):
        Dispatcher({}, [MethodContract("t.m", "test", EMPTY, {})])


@pytest.mark.parametrize("id_text", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_id_is_an_invalid_request(id_text: str) -> None:
    async def ok(params: dict[str, Any]) -> Any:
        return 1

    body = '{"jsonrpc":"2.0","method":"t.m","id":' + id_text + "}"
    reply = trio.run(dispatcher(ok).handle_bytes, body)
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_a_deeply_nested_body_is_a_parse_error_not_a_crash() -> None:
    async def ok(params: dict[str, Any]) -> Any:
        return 1

    reply = trio.run(dispatcher(ok).handle_bytes, "[" * 100_000 + "]" * 100_000)
    assert isinstance(reply, dict) and reply["error"]["code"] == -32700
