"""Events on /rpc/ws: they arrive in the order things happened, carry the documented data,
and a reader that falls behind loses its oldest events (counted) without slowing the node."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from gate_runner.components.control.contract import EVENT_SCHEMAS
from gate_runner.identity import Identity
from tests.control.conftest import Rpc, WsRpc, ws_connect
from tests.rig import GateNode, make_node

pytestmark = pytest.mark.e2e

SCENARIO = ("spec.applied", "peer.connected", "request.completed", "spec.rejected")


def _wait_for_event(ws: WsRpc, type_: str, seen: list[dict[str, Any]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = ws.next_event(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(event)
        if event["type"] == type_:
            return
    raise AssertionError(f"no {type_} event within {timeout}s; saw {[e['type'] for e in seen]}")


def test_events_arrive_in_order_for_a_scripted_scenario(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    """Apply a spec that adds a peer, the peer connects, a request completes, then an
    invalid apply: the events come in that order, numbered, each of its documented shape."""
    alice, _ = make_node(node_factory, tmp_path / "a", "alice")
    bob, bob_id = make_node(node_factory, tmp_path / "b", "bob")
    alice_peer_id = Identity.load(alice.data_dir / "identity.pem").node_id.peer_id
    bob.spec_path.write_text(
        bob.spec_path.read_text() + f"  peers:\n    - {{name: alice, id: {alice_peer_id}}}\n"
    )
    alice.start()
    bob.start()
    bob.wait_for(lambda: bob.component_ready("p2p/p2p"), timeout=30, what="bob's p2p up")

    with ws_connect(alice) as conn:
        ws = WsRpc(conn)
        types = [*SCENARIO, "component.status"]
        subscribed = ws.call("events.subscribe", {"types": types})["result"]
        assert subscribed["subscription"] == "s1"
        seen: list[dict[str, Any]] = []

        with_bob = alice.spec_path.read_text() + (
            f"  peers:\n    - {{name: bob, id: {bob_id.node_id.peer_id}, "
            f"addrs: ['/ip4/127.0.0.1/tcp/{bob.p2p_port}']}}\n"
        )
        applied = ws.call("spec.apply", {"yaml": with_bob, "wait": False})
        assert applied["result"]["changed"] is True
        _wait_for_event(ws, "spec.applied", seen)
        _wait_for_event(ws, "peer.connected", seen)

        response = httpx.post(
            f"http://127.0.0.1:{alice.api_port}/v1/chat/completions",
            json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert response.status_code == 404
        _wait_for_event(ws, "request.completed", seen)

        rejected = ws.call("spec.apply", {"yaml": "kind: Node\nspec: [\n"})
        assert rejected["error"]["code"] == -32000
        _wait_for_event(ws, "spec.rejected", seen)

    order = [e["type"] for e in seen if e["type"] in SCENARIO]
    assert order == list(SCENARIO), [e["type"] for e in seen]
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e["dropped"] == 0 and e["subscription"] == "s1" for e in seen)
    for event in seen:
        Draft202012Validator(EVENT_SCHEMAS[event["type"]]).validate(event["data"])
    by_type = {e["type"]: e["data"] for e in seen}
    assert by_type["spec.applied"]["generation"] == applied["result"]["generation"]
    assert by_type["spec.applied"]["origin"] == "apply"
    assert by_type["peer.connected"] == {"peerId": bob_id.node_id.peer_id, "name": "bob"}
    assert by_type["request.completed"]["model"] == "no-such-model"
    assert by_type["request.completed"]["status"] == 404
    assert by_type["spec.rejected"]["origin"] == "apply"
    assert by_type["spec.rejected"]["generation"] == applied["result"]["generation"]
    assert "component.status" in by_type  # the p2p component picked up the new peer

    # Bob going away is a peer.disconnected on alice's side.
    with ws_connect(alice) as conn:
        ws = WsRpc(conn)
        ws.call("events.subscribe", {"types": ["peer.disconnected"]})
        bob.stop()
        event = ws.next_event(timeout=30)
        assert event["type"] == "peer.disconnected"
        assert event["data"]["name"] == "bob"


def test_log_events_follow_the_level_filter(control_node: GateNode, ws: WsRpc) -> None:
    ws.call("events.subscribe", {"types": ["log"], "level": "warning"})
    bad = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: x}\nspec: {bogus: 1}\n"
    ws.call("spec.apply", {"yaml": bad})  # logged at error: "rejected spec"
    ws.call("node.status")  # logs nothing at warning or above
    event = ws.next_event()
    assert event["type"] == "log"
    assert event["data"]["level"] == "error"
    assert "rejected spec" in event["data"]["msg"]
    tail = ws.call("logs.tail", {"limit": 5, "level": "error"})["result"]
    assert tail and tail[-1]["msg"] == event["data"]["msg"]


def test_unsubscribe_stops_the_events(control_node: GateNode, ws: WsRpc) -> None:
    sid = ws.call("events.subscribe", {"types": ["spec.rejected"]})["result"]["subscription"]
    assert ws.call("events.unsubscribe", {"subscription": sid})["result"] == {"unsubscribed": True}
    assert ws.call("events.unsubscribe", {"subscription": sid})["result"] == {"unsubscribed": False}
    ws.call("spec.apply", {"yaml": "kind: Node\n"})
    reply = ws.call("node.status")
    assert reply["result"]["name"] == "test-node"
    assert ws.notifications == []


def _big_invalid_spec(keys: int) -> str:
    """A spec with ``keys`` unknown keys: one rejection event of some 100 KB."""
    body = "".join(f"  unknown_key_number_{i}: {i}\n" for i in range(keys))
    return f"apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {{name: x}}\nspec:\n{body}"


def test_a_slow_reader_loses_its_oldest_events_and_never_stalls_the_node(
    control_node: GateNode,
) -> None:
    """The client stops reading while some 40 MB of events are published. The node keeps
    answering; the client then finds every event either delivered or counted as dropped,
    the newest ones delivered, and the sequence numbers showing where the gaps are."""
    flood = 100
    rpc = Rpc(control_node)
    # max_queue=1: the client's library stops reading the socket once one frame waits.
    with ws_connect(control_node, max_queue=1, max_size=None) as conn:
        ws = WsRpc(conn)
        ws.call("events.subscribe", {"types": ["spec.rejected"], "queue": 4})
        call = {
            "jsonrpc": "2.0",
            "method": "spec.apply",
            "params": {"yaml": _big_invalid_spec(400)},
        }
        started = time.monotonic()
        for first in range(0, flood, 25):  # POST /rpc takes 2 MiB at most
            status, replies = rpc.post([{**call, "id": i} for i in range(first, first + 25)])
            assert status == 200 and len(replies) == 25
            assert all(r["error"]["code"] == -32000 for r in replies)
        # The node answers while the subscriber sits on a full queue.
        assert rpc.call("node.status")["result"]["name"] == "test-node"
        assert time.monotonic() - started < 120

        events = []
        while True:
            event = ws.next_event(timeout=10)
            events.append(event)
            if len(events) + event["dropped"] >= flood:
                break
    rpc.client.close()
    last = events[-1]
    assert last["dropped"] > 0, "the reader never fell behind: make the flood bigger"
    assert len(events) + last["dropped"] == flood
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert seqs[-1] - seqs[0] + 1 >= flood - 1  # the gaps are the dropped ones (and log events)
    drops = [e["dropped"] for e in events]
    assert drops == sorted(drops)
    assert len(json.dumps(last["data"])) > 50_000
