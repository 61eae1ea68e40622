"""The OpenRPC document lists every method with its params and result schemas, and what
the node answers matches them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from gate_runner.components.control.contract import CONTRACTS
from tests.control.conftest import Rpc, WsRpc
from tests.rig import GateNode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def document(control_node: GateNode) -> dict[str, Any]:
    response = httpx.get(
        f"http://127.0.0.1:{control_node.control_port}/rpc/openrpc.json",
        headers={"Authorization": f"Bearer {control_node.token}"},
    )
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_every_method_is_listed_with_params_and_result(document: dict[str, Any]) -> None:
    assert document["openrpc"].startswith("1.")
    names = [m["name"] for m in document["methods"]]
    assert names == [c.name for c in CONTRACTS]
    groups = {n.split(".")[0] for n in names}
    assert {
        "node",
        "spec",
        "peers",
        "providers",
        "requests",
        "metrics",
        "logs",
        "identity",
    } <= groups
    for method in document["methods"]:
        assert method["paramStructure"] == "by-name"
        Draft202012Validator.check_schema(method["x-params-schema"])
        Draft202012Validator.check_schema(method["result"]["schema"])
        for param in method["params"]:
            assert param["schema"], (method["name"], param["name"])
    codes = {e["code"] for e in document["x-errors"]}
    assert {-32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32003} <= codes
    assert set(document["x-events"]["types"]) == {
        "spec.applied",
        "spec.rejected",
        "component.status",
        "peer.connected",
        "peer.disconnected",
        "peer.pending",
        "request.completed",
        "log",
    }


def test_rpc_discover_returns_the_same_document(rpc: Rpc, document: dict[str, Any]) -> None:
    assert rpc.call("rpc.discover")["result"] == document


# Calls safe to make on the shared node, with params that succeed.
_SAMPLES: dict[str, dict[str, Any]] = {
    "node.status": {},
    "node.loginLink": {"ttl": 30},
    "identity.show": {},
    "spec.get": {},
    "spec.history": {"limit": 3},
    "peers.list": {},
    "providers.list": {},
    "providers.test": {},
    "requests.list": {"limit": 5},
    "metrics.get": {"prefix": "gate_"},
    "logs.tail": {"limit": 10},
}


@pytest.mark.parametrize("method", sorted(_SAMPLES))
def test_results_match_their_schema(rpc: Rpc, method: str, document: dict[str, Any]) -> None:
    (entry,) = [m for m in document["methods"] if m["name"] == method]
    reply = rpc.call(method, _SAMPLES[method])
    assert "result" in reply, reply
    Draft202012Validator(entry["result"]["schema"]).validate(reply["result"])


def test_mutating_results_match_their_schema(
    control_node: GateNode, rpc: Rpc, ws: WsRpc, document: dict[str, Any]
) -> None:
    schemas = {m["name"]: m["result"]["schema"] for m in document["methods"]}
    text = control_node.spec_path.read_text()
    for method, params in [
        ("spec.validate", {"yaml": text}),
        ("spec.diff", {"yaml": text}),
        ("spec.apply", {"yaml": text, "dryRun": True}),
    ]:
        Draft202012Validator(schemas[method]).validate(rpc.call(method, params)["result"])
    subscribed = ws.call("events.subscribe", {"types": ["log"]})["result"]
    Draft202012Validator(schemas["events.subscribe"]).validate(subscribed)
    gone = ws.call("events.unsubscribe", {"subscription": subscribed["subscription"]})["result"]
    Draft202012Validator(schemas["events.unsubscribe"]).validate(gone)


def test_no_secret_in_spec_get_or_identity(control_node: GateNode, rpc: Rpc) -> None:
    key_pem = (control_node.data_dir / "identity.pem").read_text()
    secret_line = key_pem.splitlines()[1]
    for method in ("spec.get", "identity.show", "node.status"):
        text = str(rpc.call(method)["result"])
        assert control_node.token not in text
        assert secret_line not in text
