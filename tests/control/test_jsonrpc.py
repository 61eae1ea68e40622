"""JSON-RPC 2.0 compliance, clause by clause (https://www.jsonrpc.org/specification), over
both transports: POST /rpc with a real HTTP client, and /rpc/ws with a real WebSocket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.control.conftest import Rpc, WsRpc, ws_connect
from tests.rig import GateNode

pytestmark = pytest.mark.e2e

Send = Callable[[Any], Any]  # a body (object, list or raw text) -> the reply, or None


@pytest.fixture(params=["http", "ws"])
def send(request: pytest.FixtureRequest, control_node: GateNode) -> Iterator[Send]:
    if request.param == "http":
        rpc = Rpc(control_node)

        def over_http(body: Any) -> Any:
            status, reply = rpc.post(body)
            assert status == (204 if reply is None else 200), (status, reply)
            return reply

        yield over_http
        rpc.client.close()
        return
    with ws_connect(control_node) as conn:
        ws = WsRpc(conn)
        probe = iter(range(10_000, 20_000))

        def over_ws(body: Any) -> Any:
            """Send, then a probe call. Calls on one socket run concurrently, so a reply
            may come after the probe's: give it a grace second before saying "none"."""
            ws.send(body if isinstance(body, str | bytes) else json.dumps(body))
            probe_id = next(probe)
            ws.send({"jsonrpc": "2.0", "method": "node.status", "id": probe_id})
            replies = []
            probe_seen = False
            while not probe_seen or not replies:
                try:
                    message = ws.receive(timeout=1.0 if probe_seen else 10)
                except TimeoutError:
                    break
                if isinstance(message, dict) and message.get("id") == probe_id:
                    probe_seen = True
                else:
                    replies.append(message)
            assert len(replies) <= 1, replies
            return replies[0] if replies else None

        yield over_ws


def _error(reply: Any) -> dict[str, Any]:
    assert isinstance(reply, dict) and reply["jsonrpc"] == "2.0", reply
    assert "result" not in reply, reply
    error: dict[str, Any] = reply["error"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str)
    return error


# -- 4. Request object ----------------------------------------------------------------------


@pytest.mark.parametrize("id_", [1, "abc", 0, -5, 2**40, 1.5])
def test_response_echoes_the_id_and_carries_only_result(send: Send, id_: Any) -> None:
    reply = send({"jsonrpc": "2.0", "method": "node.status", "id": id_})
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == id_
    assert "error" not in reply
    assert reply["result"]["name"] == "test-node"


def test_null_id_is_a_request_not_a_notification(send: Send) -> None:
    reply = send({"jsonrpc": "2.0", "method": "node.status", "id": None})
    assert reply["id"] is None and reply["result"]["name"] == "test-node"


def test_params_may_be_omitted(send: Send) -> None:
    assert send({"jsonrpc": "2.0", "method": "spec.history", "id": 1})["result"]


# -- 4.1 Notification -----------------------------------------------------------------------


def test_notification_gets_no_reply(send: Send) -> None:
    assert send({"jsonrpc": "2.0", "method": "node.status"}) is None


def test_notification_to_an_unknown_method_or_bad_params_gets_no_reply(send: Send) -> None:
    assert send({"jsonrpc": "2.0", "method": "no.such"}) is None
    assert send({"jsonrpc": "2.0", "method": "spec.history", "params": {"limit": "x"}}) is None


# -- 4.2 Parameter structures ---------------------------------------------------------------


def test_params_by_position_are_refused_with_invalid_params(send: Send) -> None:
    error = _error(send({"jsonrpc": "2.0", "method": "spec.history", "params": [5], "id": 3}))
    assert error["code"] == -32602
    assert "by name" in error["message"]


@pytest.mark.parametrize("params", ["x", 5, True, None])
def test_params_that_are_not_structured_make_an_invalid_request(send: Send, params: Any) -> None:
    reply = send({"jsonrpc": "2.0", "method": "node.status", "params": params, "id": 4})
    assert _error(reply)["code"] == -32600
    assert reply["id"] == 4


# -- 5. Response object and 5.1 Error object ------------------------------------------------


def test_parse_error(send: Send) -> None:
    reply = send('{"jsonrpc": "2.0", "method": "node.status", "params": "bar", "baz]')
    assert _error(reply)["code"] == -32700
    assert reply["id"] is None


@pytest.mark.parametrize(
    "message",
    [
        1,
        None,
        {"method": "node.status", "id": 1},
        {"jsonrpc": "1.0", "method": "node.status", "id": 1},
        {"jsonrpc": "2.0", "method": 1, "id": 1},
        {"jsonrpc": "2.0", "id": 1},
    ],
)
def test_invalid_request(send: Send, message: Any) -> None:
    reply = send(message)
    assert _error(reply)["code"] == -32600
    assert reply["id"] == (message.get("id") if isinstance(message, dict) else None)


@pytest.mark.parametrize("id_", [{"a": 1}, [1], True])
def test_an_id_of_the_wrong_type_is_an_invalid_request_with_null_id(send: Send, id_: Any) -> None:
    reply = send({"jsonrpc": "2.0", "method": "node.status", "id": id_})
    assert _error(reply)["code"] == -32600
    assert reply["id"] is None


def test_method_not_found(send: Send) -> None:
    reply = send({"jsonrpc": "2.0", "method": "foobar", "id": "1"})
    assert _error(reply)["code"] == -32601
    assert reply["id"] == "1"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limmit": 5}, "(params)"),
    ],
)
def test_invalid_params_say_which_param(send: Send, params: Any, path: str) -> None:
    reply = send({"jsonrpc": "2.0", "method": "spec.history", "params": params, "id": 9})
    error = _error(reply)
    assert error["code"] == -32602
    assert [e["path"] for e in error["data"]["errors"]] == [path]


def test_a_missing_required_param_is_invalid_params(send: Send) -> None:
    error = _error(send({"jsonrpc": "2.0", "method": "spec.validate", "params": {}, "id": 1}))
    assert error["code"] == -32602
    assert "yaml" in error["message"]


# -- server-defined errors (-32000 to -32099) -----------------------------------------------


def test_spec_invalid_carries_the_issues(send: Send) -> None:
    bad = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: x}\nspec: {colour: red}\n"
    reply = send({"jsonrpc": "2.0", "method": "spec.validate", "params": {"yaml": bad}, "id": 1})
    error = _error(reply)
    assert error["code"] == -32000
    (issue,) = error["data"]["issues"]
    assert issue["path"] == "spec.colour" and issue["line"] == 4


def test_conflict_carries_expected_and_current(send: Send, control_node: GateNode) -> None:
    params = {"yaml": control_node.spec_path.read_text(), "expectedGeneration": 999}
    error = _error(send({"jsonrpc": "2.0", "method": "spec.apply", "params": params, "id": 1}))
    assert error["code"] == -32001
    assert error["data"] == {"expected": 999, "current": control_node.generation()}


def test_gate_error_carries_a_hint(send: Send) -> None:
    error = _error(
        send({"jsonrpc": "2.0", "method": "requests.get", "params": {"id": "nope"}, "id": 1})
    )
    assert error["code"] == -32002
    assert error["data"]["hint"]


def test_subscribing_over_http_says_to_use_the_websocket(rpc: Rpc) -> None:
    error = _error(rpc.call("events.subscribe", {}))
    assert error["code"] == -32003
    assert "/rpc/ws" in error["data"]["hint"]


# -- 6. Batch ---------------------------------------------------------------------------------


def test_batch_answers_each_call_and_skips_notifications(send: Send) -> None:
    reply = send(
        [
            {"jsonrpc": "2.0", "method": "node.status", "id": "1"},
            {"jsonrpc": "2.0", "method": "node.status"},
            {"jsonrpc": "2.0", "method": "spec.history", "params": {"limit": 1}, "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        ]
    )
    assert isinstance(reply, list) and len(reply) == 4
    by_id = {r["id"]: r for r in reply}
    assert by_id["1"]["result"]["name"] == "test-node"
    assert len(by_id["2"]["result"]) == 1
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["5"]["error"]["code"] == -32601


def test_batch_of_invalid_entries_answers_each(send: Send) -> None:
    reply = send([1, 2, 3])
    assert [_error(r)["code"] for r in reply] == [-32600, -32600, -32600]


def test_empty_batch_is_one_invalid_request(send: Send) -> None:
    reply = send([])
    assert isinstance(reply, dict) and _error(reply)["code"] == -32600


def test_batch_that_does_not_parse_is_one_parse_error(send: Send) -> None:
    reply = send('[{"jsonrpc": "2.0", "method": "node.status", "id": "1"},{"jsonrpc": "2.0", "m')
    assert isinstance(reply, dict) and _error(reply)["code"] == -32700


def test_batch_of_notifications_gets_no_reply(send: Send) -> None:
    assert send([{"jsonrpc": "2.0", "method": "node.status"}] * 3) is None


# -- transport details ------------------------------------------------------------------------


def test_broken_utf8_is_a_parse_error(send: Send) -> None:
    reply = send(b'{"jsonrpc": "2.0", "method": "node.status\xff\xfe", "id": 1}')
    assert _error(reply)["code"] == -32700


def test_websocket_text_and_binary_frames_both_carry_calls(ws: WsRpc) -> None:
    ws.send(json.dumps({"jsonrpc": "2.0", "method": "node.status", "id": 1}).encode())
    assert ws.reply_to(1)["result"]["name"] == "test-node"
