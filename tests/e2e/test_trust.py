"""Trust between real `gate up` processes and real libp2p hosts held by the test: who may
use a node, what a hello tells each kind of peer, what peers.list shows both ways, and how
loud an unreachable peer is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator

from gate_runner.components.control.contract import CONTRACTS
from gate_runner.identity import Identity
from tests.rig import GateNode, ServerProcess, add_to_spec, linked_pair, make_node, ollama_provider

pytestmark = pytest.mark.e2e

HELLO = "/gate/hello/1"
CHAT = {"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 2}
PEER_SCHEMA = next(c for c in CONTRACTS if c.name == "peers.list").result


@dataclass
class Visit:
    """What a peer held by the test saw of a node: its hello reply and its answers."""

    hello: dict[str, Any] | None = None
    answers: list[tuple[int, dict[str, Any], str | None]] = field(default_factory=list)


def visit(identity: Identity, node: GateNode, node_id: str, bodies: list[dict[str, Any]]) -> Visit:
    """Connect to ``node`` as the peer ``identity`` from a real libp2p host: say hello as
    a node would, then send each request in turn over /gate/http/1."""
    from gate_runner.p2p import P2PHost, P2PHttpClient, read_json, write_json

    seen = Visit()

    async def main() -> None:
        host = P2PHost(seed=identity.seed, listen=["/ip4/127.0.0.1/tcp/0"])
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            await host.connect(node_id, [f"/ip4/127.0.0.1/tcp/{node.p2p_port}"])
            stream = await host.open_stream(node_id, HELLO)
            await write_json(stream, {"protocol": 1, "models": []})
            seen.hello = await read_json(stream, max_size=1 << 16)
            await stream.aclose()
            client = P2PHttpClient(host)
            for body in bodies:
                async with client.request(
                    node_id,
                    "POST",
                    "/v1/chat/completions",
                    [("content-type", "application/json")],
                    json.dumps(body).encode(),
                ) as response:
                    data = await response.read()
                    seen.answers.append(
                        (
                            response.status,
                            json.loads(data) if data else {},
                            response.header("retry-after"),
                        )
                    )
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")
    return seen


def warnings_of_untrusted(node: GateNode) -> list[str]:
    return [
        r["msg"]
        for r in node.log_records()
        if r["level"] == "warning" and r["msg"].startswith("peers known but not trusted")
    ]


def peers_by_name(node: GateNode) -> dict[str, dict[str, Any]]:
    peers = node.rpc("peers.list")
    Draft202012Validator(PEER_SCHEMA).validate(peers)  # real results, the published schema
    return {p["name"]: p for p in peers}


def test_friends_mode_serves_only_peers_with_a_rule(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    """bob is declared (alice may use bob) but has no rule; tester has one. Only tester may
    use alice, and a refused model does not spend tester's one request a minute."""
    bob, tester, stranger = Identity.generate(), Identity.generate(), Identity.generate()
    alice, alice_id = make_node(
        node_factory,
        tmp_path / "a",
        "alice",
        f"    static:\n      - {{name: ollama, kind: ollama, url: '{ollama.url}'}}\n",
    )
    add_to_spec(
        alice,
        "  peers:\n"
        f"    - {{name: bob, id: {bob.node_id.peer_id}}}\n"
        f"    - {{name: tester, id: {tester.node_id.peer_id}}}\n"
        "  trust:\n    mode: friends\n    allow:\n"
        "      - {peer: tester, models: ['llama3*'], rateLimit: {requestsPerMinute: 1}}\n",
    )
    alice.start()
    alice.wait_for(lambda: alice.component_ready("p2p/p2p"), timeout=30, what="p2p up")
    target = alice_id.node_id.peer_id
    llama = {"model": "llama3:8b", **CHAT}

    # A stranger and a known-but-untrusted peer learn the protocol version, nothing else.
    for who, expected in ((stranger, "not a friend"), (bob, "peer bob is known but not trusted")):
        seen = visit(who, alice, target, [llama])
        assert seen.hello == {"protocol": 1, "models": []}
        status, body, _ = seen.answers[0]
        assert status == 403 and expected in body["error"]["message"], body
    assert "add `{peer: bob}` under spec.trust.allow" in body["error"]["message"]

    qwen = {"model": "qwen2:0.5b", **CHAT}  # served by alice, not shared with tester
    seen = visit(tester, alice, target, [qwen, qwen, qwen, llama, llama])
    assert seen.hello is not None
    assert seen.hello["name"] == "alice" and seen.hello["version"]
    assert seen.hello["models"] == ["llama3:8b"] and "load" in seen.hello
    statuses = [status for status, _, _ in seen.answers]
    assert statuses == [403, 403, 403, 200, 429], seen.answers
    assert seen.answers[0][1]["error"]["code"] == "model_not_shared"
    assert seen.answers[3][1]["usage"]["completion_tokens"] == 2
    assert int(seen.answers[4][2] or 0) >= 1
    records = alice.rpc("requests.list", {"limit": 20})
    refused = [r for r in records if r["source"] == "peer:tester" and r["status"] == 403]
    assert len(refused) == 3  # refused by the router's own permit, and recorded

    peers = peers_by_name(alice)
    assert peers["bob"]["trusted"] is False and peers["bob"]["sharedModels"] is None
    assert peers["bob"]["rateLimit"] is None
    assert peers["tester"]["trusted"] is True and peers["tester"]["sharedModels"] == ["llama3*"]
    assert peers["tester"]["rateLimit"] == {"requestsPerMinute": 1, "concurrent": None}

    # One warning at start, naming bob (not one per hello or request) ...
    (warning,) = warnings_of_untrusted(alice)
    assert "bob" in warning and "tester" not in warning and "spec.trust.allow" in warning
    # ... none when an apply leaves that set as it was ...
    alice.rpc(
        "peers.add", {"name": "erin", "id": Identity.generate().node_id.peer_id, "trusted": True}
    )
    assert len(warnings_of_untrusted(alice)) == 1
    # ... and one more when it changes.
    alice.rpc("peers.add", {"name": "dave", "id": Identity.generate().node_id.peer_id})
    warnings = warnings_of_untrusted(alice)
    assert len(warnings) == 2 and "bob, dave" in warnings[1]


def test_peers_add_trusted_writes_a_rule_and_peers_rm_removes_it(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    node = node_factory(tmp_path, name="alice")
    node.start()
    node.wait_for(lambda: node.component_ready("p2p/p2p"), timeout=30, what="p2p up")
    carol = Identity.generate().node_id.peer_id

    refused = node.rpc_raw("peers.add", {"name": "carol", "id": carol, "models": ["llama3*"]})
    assert refused["error"]["code"] == -32602
    assert "trusted" in refused["error"]["message"]
    bad = node.rpc_raw("peers.add", {"name": "carol", "id": carol, "rateLimit": {"rpm": 1}})
    assert bad["error"]["code"] == -32602  # the schema closes rateLimit

    added = node.rpc(
        "peers.add",
        {
            "name": "carol",
            "id": carol,
            "trusted": True,
            "models": ["llama3*", "qwen*"],
            "rateLimit": {"requestsPerMinute": 30, "concurrent": 2},
        },
    )
    assert added["changed"] and added["converged"]
    spec = node.rpc("spec.get")["document"]["spec"]
    assert spec["trust"]["allow"] == [
        {
            "peer": "carol",
            "models": ["llama3*", "qwen*"],
            "rateLimit": {"requestsPerMinute": 30, "concurrent": 2},
        }
    ]
    carol_row = peers_by_name(node)["carol"]
    assert carol_row["trusted"] is True and carol_row["sharedModels"] == ["llama3*", "qwen*"]
    assert carol_row["rateLimit"] == {"requestsPerMinute": 30, "concurrent": 2}

    node.rpc(
        "peers.add", {"name": "dan", "id": Identity.generate().node_id.peer_id, "trusted": True}
    )
    assert peers_by_name(node)["dan"]["sharedModels"] == ["*"]

    removed = node.rpc("peers.rm", {"name": "carol"})
    assert removed["changed"] and removed["converged"]  # the spec stayed valid
    spec = node.rpc("spec.get")["document"]["spec"]
    assert [p["name"] for p in spec["peers"]] == ["dan"]
    assert spec["trust"]["allow"] == [{"peer": "dan"}]
    node.rpc("peers.rm", {"name": "dan"})
    assert "allow" not in node.rpc("spec.get")["document"]["spec"].get("trust", {})


def test_an_offline_peer_keeps_its_models_marked_stale_and_one_warning(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    """alice trusts bob; bob only knows alice. When alice stops, bob still lists what she
    offered, marked stale, and redials her with one WARNING, not one ERROR per try."""
    alice, bob = linked_pair(node_factory, tmp_path, ollama_provider(ollama.url))
    alice.wait_for(
        lambda: peers_by_name(alice)["bob"]["state"] == "connected", timeout=10, what="bob"
    )
    seen_by_bob = peers_by_name(bob)["alice"]
    assert seen_by_bob["modelsStale"] is False and "llama3:8b" in seen_by_bob["models"]
    assert seen_by_bob["remoteName"] == "alice" and seen_by_bob["trusted"] is False
    seen_by_alice = peers_by_name(alice)["bob"]
    assert seen_by_alice["trusted"] is True and seen_by_alice["sharedModels"] == ["*"]
    # bob does not trust alice: its hello told her neither its name nor its version.
    assert seen_by_alice["remoteName"] is None and seen_by_alice["version"] is None

    offered = seen_by_bob["models"]
    alice.stop()
    bob.wait_for(
        lambda: peers_by_name(bob)["alice"]["state"] != "connected", timeout=20, what="down"
    )
    after = peers_by_name(bob)["alice"]
    assert after["models"] == offered and after["modelsStale"] is True

    def dial_failures() -> list[dict[str, Any]]:
        return [r for r in bob.log_records() if r["msg"].startswith("cannot reach peer alice")]

    bob.wait_for(lambda: len(dial_failures()) >= 3, timeout=30, what="three failed dials")
    levels = [r["level"] for r in dial_failures()]
    assert levels[0] == "warning" and set(levels[1:]) == {"debug"}, levels
    errors = [r for r in bob.log_records() if r["level"] in ("error", "critical")]
    assert not errors, errors

    # Another node takes alice's port: a different failure, so a WARNING again.
    from gate_runner.p2p import P2PHost

    def impostor_seen() -> list[dict[str, Any]]:
        return [r for r in dial_failures() if "does not correspond" in r["msg"]]

    async def impostor() -> None:
        host = P2PHost(
            seed=Identity.generate().seed, listen=[f"/ip4/127.0.0.1/tcp/{alice.p2p_port}"]
        )
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            with anyio.fail_after(40):
                while not impostor_seen():
                    await anyio.sleep(0.1)
            tg.cancel_scope.cancel()

    anyio.run(impostor, backend="trio")
    assert impostor_seen()[0]["level"] == "warning"
