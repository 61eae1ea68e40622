"""Fuzzing POST /rpc with hypothesis: any JSON, any bytes, and well-formed calls with random
params always get a valid JSON-RPC reply (or none, for notifications): never a 500, never a
crash, and the node keeps answering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate_runner.components.control.contract import CONTRACTS
from tests.control.conftest import Rpc, WsRpc, ws_connect
from tests.rig import GateNode

pytestmark = pytest.mark.e2e

# Calls that would stop or roll back the node under test: the fuzzer may not make them
# with valid params. (Their params are still fuzzed: see below.)
_DISRUPTIVE = {"node.shutdown", "spec.rollback"}
_METHODS = sorted(c.name for c in CONTRACTS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def _check_reply(status: int, reply: Any) -> None:
    assert status in (200, 204), status
    if status == 204:
        assert reply is None
        return
    replies = reply if isinstance(reply, list) else [reply]
    assert replies
    for one in replies:
        assert one["jsonrpc"] == "2.0"
        assert "id" in one
        assert ("result" in one) != ("error" in one), one
        if "error" in one:
            assert isinstance(one["error"]["code"], int)
            assert isinstance(one["error"]["message"], str)
            assert one["error"]["code"] != -32603, one  # an internal error is a bug


_fuzz = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_fuzz
@given(body=st.binary(max_size=300))
def test_random_bytes(rpc: Rpc, body: bytes) -> None:
    _check_reply(*rpc.post(body))


@_fuzz
@given(value=json_values)
def test_random_json(rpc: Rpc, value: Any) -> None:
    _check_reply(*rpc.post(json.dumps(value)))


@_fuzz
@given(
    method=st.sampled_from(_METHODS),
    params=st.dictionaries(
        st.sampled_from(["limit", "name", "yaml", "id", "types", "x"]), json_values, max_size=3
    ),
    id_=st.one_of(st.integers(), st.text(max_size=8), st.none()),
    notify=st.booleans(),
)
def test_real_methods_with_random_params(
    rpc: Rpc, method: str, params: dict[str, Any], id_: Any, notify: bool
) -> None:
    if method in _DISRUPTIVE and params == {}:
        params = {"unexpected": True}  # still fuzzes the params check, never runs it
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if not notify:
        message["id"] = id_
    _check_reply(*rpc.post(message))


@_fuzz
@given(text=st.text(max_size=200))
def test_random_text_with_broken_utf8(rpc: Rpc, text: str) -> None:
    body = (
        text.encode("utf-8", errors="surrogatepass")[:100]
        + b"\xc3\x28"
        + text.encode("utf-8", errors="surrogatepass")[100:]
    )
    status, reply = rpc.post(body)
    _check_reply(status, reply)
    assert reply["error"]["code"] == -32700


@pytest.fixture(scope="module")
def socket(control_node: GateNode) -> Iterator[WsRpc]:
    with ws_connect(control_node) as conn:
        yield WsRpc(conn)


@_fuzz
@given(frame=st.binary(max_size=300) | json_values.map(json.dumps))
def test_random_websocket_frames(socket: WsRpc, frame: bytes | str) -> None:
    """Each frame gets its reply (or none, for notifications) and the socket stays open:
    a probe call after it is answered."""
    socket.send(frame)
    socket.send({"jsonrpc": "2.0", "method": "node.status", "id": "probe"})
    while True:
        message = socket.receive()
        if isinstance(message, dict) and message.get("id") == "probe":
            assert message["result"]["name"] == "test-node"
            return
        _check_reply(200, message)


def test_the_node_survived(control_node: GateNode, rpc: Rpc) -> None:
    assert rpc.call("node.status")["result"]["name"] == "test-node"
    assert control_node.proc is not None and control_node.proc.poll() is None
