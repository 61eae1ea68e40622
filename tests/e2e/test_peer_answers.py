"""What a client of the requesting node hears when a peer refuses, limits or drops out:
the peer's own reason (403), its Retry-After (429), and "peer offline" (503), never a
bare 404. Two `gate up` processes over libp2p, with the recorded-contract Ollama."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.rig import GateNode, ServerProcess, linked_pair, make_node, ollama_provider

pytestmark = pytest.mark.e2e


def chat(node: GateNode, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return httpx.post(
        f"http://127.0.0.1:{node.api_port}/v1/chat/completions", json=body, timeout=30
    )


def test_a_peers_refusal_limit_and_absence_reach_the_client(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    # alice shares llama3* with bob, one request a minute.
    alice, bob = linked_pair(
        node_factory,
        tmp_path,
        ollama_provider(ollama.url),
        rule="{peer: bob, models: ['llama3*'], rateLimit: {requestsPerMinute: 1}}",
    )
    assert next(p for p in bob.rpc("peers.list") if p["name"] == "alice")["models"] == ["llama3:8b"]

    # A model alice has but does not share: her reason, not "does not exist".
    refused = chat(bob, "qwen2:0.5b@alice")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_not_shared" and "qwen2:0.5b" in error["message"]
    # ... and the refusal did not spend bob's one request a minute.
    served = chat(bob, "llama3:8b@alice")
    assert served.status_code == 200, served.text
    assert served.headers["x-gate-node"] == "alice"
    # The next one is over the limit: alice's Retry-After reaches bob's client.
    limited = chat(bob, "llama3:8b")
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60

    # alice goes away: her models are known, so it is "offline", with a time to retry.
    alice.stop()
    bob.wait_for(
        lambda: (
            next(p for p in bob.rpc("peers.list") if p["name"] == "alice")["state"] != "connected"
        ),
        timeout=20,
        what="link down",
    )
    for model in ("llama3:8b", "llama3:8b@alice"):
        offline = chat(bob, model)
        assert offline.status_code == 503, offline.text
        assert offline.json()["error"]["code"] == "peer_offline"
        assert "alice" in offline.json()["error"]["message"]
        assert int(offline.headers["retry-after"]) >= 1
    # A model nobody offered is no peer's fault (bob has no engine of his own).
    unknown = chat(bob, "no-such-model")
    assert unknown.json()["error"]["code"] != "peer_offline"


def test_a_peers_request_travels_one_hop_only(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    """carol may use alice, and alice may use bob's engine; carol still cannot reach bob
    through alice: a peer's request is served by the receiving node's own engines only."""
    bob, bob_id = make_node(
        node_factory,
        tmp_path / "b",
        "bob",
        f"    static:\n      - {ollama_provider(ollama.url)}\n",
    )
    alice, alice_id = make_node(node_factory, tmp_path / "a", "alice")
    carol, carol_id = make_node(node_factory, tmp_path / "c", "carol")
    bob.spec_path.write_text(
        bob.spec_path.read_text()
        + f"  peers:\n    - {{name: alice, id: {alice_id.node_id.peer_id}}}\n"
        + "  trust: {allow: [{peer: alice}]}\n"
    )
    alice.spec_path.write_text(
        alice.spec_path.read_text()
        + "  peers:\n"
        + f"    - {{name: bob, id: {bob_id.node_id.peer_id}, "
        f"addrs: ['/ip4/127.0.0.1/tcp/{bob.p2p_port}']}}\n"
        + f"    - {{name: carol, id: {carol_id.node_id.peer_id}}}\n"
        + "  trust: {allow: [{peer: carol}]}\n"
    )
    carol.spec_path.write_text(
        carol.spec_path.read_text()
        + f"  peers:\n    - {{name: alice, id: {alice_id.node_id.peer_id}, "
        f"addrs: ['/ip4/127.0.0.1/tcp/{alice.p2p_port}']}}\n"
    )
    for node in (bob, alice, carol):
        node.start()
    alice.wait_for(
        lambda: any(p["name"] == "bob" and p["models"] for p in alice.rpc("peers.list")),
        timeout=20,
        what="alice sees bob's models",
    )
    carol.wait_for(
        lambda: any(
            p["name"] == "alice" and p["state"] == "connected" for p in carol.rpc("peers.list")
        ),
        timeout=20,
        what="carol linked to alice",
    )
    assert chat(alice, "llama3:8b").status_code == 200  # alice herself may use bob's
    # alice offers carol nothing of her own, so the model is not listed at carol ...
    alice_at_carol = next(p for p in carol.rpc("peers.list") if p["name"] == "alice")
    assert alice_at_carol["models"] == []
    # ... and asked explicitly, alice answers from her own engines, of which she has none.
    relayed = chat(carol, "llama3:8b@alice")
    assert relayed.status_code in (404, 503), relayed.text
    assert relayed.headers.get("x-gate-node") != "bob"
    served = next(p for p in bob.rpc("peers.list") if p["name"] == "alice")["requestsServed"]
    assert served == 1  # alice's own request only
