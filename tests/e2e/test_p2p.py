"""Two and three `gate up` processes linked over libp2p, with the real llama.cpp engine."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from gate_runner.identity import Identity
from tests.llm.engine import LlamaServer
from tests.rig import (
    GateNode,
    ServerProcess,
    add_to_spec,
    linked_pair,
    make_node,
    peers_yaml,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(
    tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer
) -> tuple[GateNode, GateNode]:
    """alice serves the engine; bob has none and uses alice's."""
    return linked_pair(
        node_factory, tmp_path, f"{{name: llama, kind: openai, url: '{engine.base_url}'}}"
    )


def test_bob_answers_from_alices_engine(pair: tuple[GateNode, GateNode]) -> None:
    alice, bob = pair
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{bob.api_port}/v1", api_key="x", max_retries=0)
    tiny = next(m for m in c.models.list().data if m.id == "tiny")
    gate = (tiny.model_extra or {})["gate"]
    assert gate["local"] is False and gate["node_name"] == "alice"

    raw = c.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert raw.headers["x-gate-node"] == "alice"
    assert raw.headers["x-gate-provider"] == "llama"
    assert raw.parse().usage.completion_tokens == 8  # type: ignore[union-attr]

    chunks = list(
        c.chat.completions.create(
            model="tiny@alice",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=10,
            stream=True,
        )
    )
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 10

    # bob is not a target for itself: it has no engine.
    r = httpx.post(
        f"http://127.0.0.1:{bob.api_port}/v1/chat/completions",
        headers={"X-Target-Node": "bob"},
        json={"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 404
    # alice logged the request as coming from bob.
    records = alice.rpc("requests.list", {"limit": 5})
    assert any(r["source"] == "peer:bob" and r["status"] == 200 for r in records)
    peers = {p["name"]: p for p in bob.rpc("peers.list")}
    assert peers["alice"]["lastRttMs"] is not None and peers["alice"]["requestsSent"] == 2
    assert peers["alice"]["lastSeen"] is not None  # from the peer book in state.db


def _raw_requests(
    identity: Identity, target: GateNode, target_id: str, bodies: list[dict]
) -> list[tuple[int, dict, str | None]]:
    """Send requests to a node from a real libp2p host held by the test (another peer)."""
    import trio

    from gate_runner.p2p import P2PHost, P2PHttpClient

    results: list[tuple[int, dict, str | None]] = []

    async def main() -> None:
        host = P2PHost(seed=identity.seed, listen=["/ip4/127.0.0.1/tcp/0"])
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            await host.connect(target_id, [f"/ip4/127.0.0.1/tcp/{target.p2p_port}"])
            client = P2PHttpClient(host)
            for body in bodies:
                async with client.request(
                    target_id,
                    "POST",
                    "/v1/chat/completions",
                    [("content-type", "application/json")],
                    json.dumps(body).encode(),
                ) as response:
                    data = await response.read()
                    results.append(
                        (
                            response.status,
                            json.loads(data) if data else {},
                            response.header("retry-after"),
                        )
                    )
            nursery.cancel_scope.cancel()

    trio.run(main)
    return results


def test_trust_rules_on_inbound_requests(
    tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer
) -> None:
    tester = Identity.generate()
    stranger = Identity.generate()
    alice, alice_id = make_node(
        node_factory,
        tmp_path / "a",
        "alice",
        f"    static:\n      - {{name: llama, kind: openai, url: '{engine.base_url}'}}\n",
    )
    add_to_spec(
        alice,
        peers_yaml(f"{{name: tester, id: {tester.node_id.peer_id}}}")
        + (
            "  trust:\n    mode: friends\n    allow:\n"
            "      - {peer: tester, models: ['tiny'], rateLimit: {requestsPerMinute: 1}}\n"
        ),
    )
    alice.start()
    alice.wait_for(lambda: alice.component_ready("p2p/p2p"), timeout=20, what="p2p up")
    target = alice_id.node_id.peer_id
    chat = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}

    refused = _raw_requests(stranger, alice, target, [{"model": "tiny", **chat}])
    assert refused[0][0] == 403 and "not a friend" in refused[0][1]["error"]["message"]

    results = _raw_requests(
        tester,
        alice,
        target,
        [
            {"model": "other", **chat},  # not shared with tester: refused, no token spent
            {"model": "tiny", **chat},
            {"model": "tiny", **chat},  # the second one within the minute is over the limit
        ],
    )
    assert results[0][0] == 403 and results[0][1]["error"]["code"] == "model_not_shared"
    assert results[1][0] == 200 and results[1][1]["usage"]["completion_tokens"] == 2
    assert results[2][0] == 429 and int(results[2][2] or 0) >= 1
    messages = [r["msg"] for r in alice.log_records()]
    assert any("refused a request from peer" in m for m in messages)
    records = alice.rpc("requests.list", {"limit": 10})
    assert any(r["source"] == "peer:tester" and r["status"] == 200 for r in records)


def test_three_nodes_and_peer_cli(
    tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer, ollama: ServerProcess
) -> None:
    from tests.rig import run_gate

    alice, alice_id = make_node(
        node_factory,
        tmp_path / "a",
        "alice",
        f"    static:\n      - {{name: llama, kind: openai, url: '{engine.base_url}'}}\n",
    )
    bob, bob_id = make_node(
        node_factory,
        tmp_path / "b",
        "bob",
        f"    static:\n      - {{name: ollama, kind: ollama, url: '{ollama.url}'}}\n",
    )
    carol, carol_id = make_node(node_factory, tmp_path / "c", "carol")
    for server in (alice, bob):
        add_to_spec(
            server,
            peers_yaml(f"{{name: carol, id: {carol_id.node_id.peer_id}}}")
            + "  trust:\n    allow: [{peer: carol}]\n",
        )
        server.start()
    carol.start()
    spec = str(carol.spec_path)
    for name, node, identity in (("alice", alice, alice_id), ("bob", bob, bob_id)):
        added = run_gate(
            "peers",
            "add",
            name,
            identity.node_id.peer_id,
            "--addr",
            f"/ip4/127.0.0.1/tcp/{node.p2p_port}",
            "-f",
            spec,
        )
        assert added.returncode == 0, added.stderr
    assert "name: alice" in carol.spec_path.read_text()  # the spec changed, comments kept
    assert "# test node spec" in carol.spec_path.read_text()
    carol.wait_for(
        lambda: sum(1 for p in carol.rpc("peers.list") if p["models"]) == 2,
        timeout=20,
        what="both links up",
    )
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{carol.api_port}/v1", api_key="x", max_retries=0)
    by_id = {m.id: (m.model_extra or {})["gate"]["node_name"] for m in c.models.list().data}
    assert by_id["tiny"] == "alice" and by_id["llama3:8b"] == "bob"
    r1 = c.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    r2 = c.chat.completions.with_raw_response.create(
        model="llama3:8b", messages=[{"role": "user", "content": "a b c"}], max_tokens=3
    )
    assert r1.headers["x-gate-node"] == "alice" and r2.headers["x-gate-node"] == "bob"
    status = run_gate("status", "-f", spec)
    assert status.returncode == 0
    assert any(line.split()[:2] == ["alice", "connected"] for line in status.stdout.splitlines())
    ls = run_gate("peers", "ls", "-f", spec)
    assert ls.returncode == 0 and "alice" in ls.stdout and "connected" in ls.stdout
    test = run_gate("peers", "test", "alice", "-f", spec, "-o", "json")
    assert test.returncode == 0, test.stderr
    tested = json.loads(test.stdout)
    assert tested["lastRttMs"] > 0 and tested["connection"] == "direct"
    assert "tiny" in tested["models"]
    removed = run_gate("peers", "rm", "bob", "-f", spec)
    assert removed.returncode == 0, removed.stderr
    carol.wait_for(
        lambda: "llama3:8b" not in {m.id for m in c.models.list().data},
        timeout=10,
        what="bob's models gone",
    )
    components = {f"{x['kind']}/{x['key']}": x for x in carol.status()["components"]}  # type: ignore[index]
    assert components["p2p/p2p"]["restarts"] == 0  # peers change in place


def test_remote_node_killed_mid_stream(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    alice, bob = linked_pair(
        node_factory, tmp_path, f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}"
    )
    url = f"http://127.0.0.1:{bob.api_port}/v1/chat/completions"
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", url, json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert '"chat.completion.chunk"' in first
        assert alice.proc is not None
        alice.proc.kill()  # the remote node dies mid-stream
        rest = [line for line in lines if line.startswith("data: ")]
    assert '"error"' in rest[-1], rest[-3:]
    records = bob.rpc("requests.list", {"limit": 5})
    assert records[0]["status"] == 502 and "mid-response" in records[0]["error"]
    # bob notices the link is gone and stops offering alice's models.
    bob.wait_for(
        lambda: all(p["state"] != "connected" for p in bob.rpc("peers.list")),
        timeout=20,
        what="link down",
    )


def test_many_cancelled_requests_keep_the_link_up(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    """Clients leaving mid-stream cancel B's forwards mid-write; the Noise session must not
    lose a message, or every later one fails to decrypt and A drops the link."""
    import trio

    alice, bob = linked_pair(
        node_factory, tmp_path, f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}"
    )
    payload = json.dumps(
        {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
    )

    async def one(cut: trio.Event) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", bob.api_port)
        async with stream:
            await stream.send_all(request)
            await stream.receive_some(65536)
            await cut.wait()  # then every client leaves at once

    async def round_() -> None:
        cut = trio.Event()
        async with trio.open_nursery() as nursery:
            for _ in range(32):
                nursery.start_soon(one, cut)
            await trio.sleep(0.3)
            cut.set()

    for _ in range(5):
        trio.run(round_)
        ok = httpx.post(
            f"http://127.0.0.1:{bob.api_port}/v1/chat/completions",
            timeout=30,
            json={"model": "ok", "messages": [{"role": "user", "content": "x"}]},
        )
        assert ok.status_code == 200, ok.text
    assert not any("Failed authentication" in r.get("msg", "") for r in alice.log_records())
    assert not any(r.get("level") == "error" for r in alice.log_records())
    records = alice.rpc("requests.list", {"limit": 200})
    assert sum(1 for r in records if r["status"] == 499) >= 100  # the left clients, recorded
    assert not any(r.get("msg") == "peer disconnected" for r in bob.log_records())


def test_a_peer_declared_after_it_dialed_in_shows_connected(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    """Bob dials alice while alice does not know him (a pending request); once alice adds
    him, her peer table says connected over the link that already exists."""
    from tests.rig import run_gate

    alice, alice_id = make_node(node_factory, tmp_path / "a", "alice")
    bob, bob_id = make_node(node_factory, tmp_path / "b", "bob")
    alice.start()
    add_to_spec(
        bob,
        peers_yaml(
            f"{{name: alice, id: {alice_id.node_id.peer_id},"
            f" addrs: ['/ip4/127.0.0.1/tcp/{alice.p2p_port}']}}"
        ),
    )
    bob.start()
    alice.wait_for(
        lambda: any(p["peerId"] == bob_id.node_id.peer_id for p in alice.rpc("peers.pending")),
        timeout=20,
        what="bob's request to connect",
    )
    added = run_gate("peers", "add", "bob", bob_id.node_id.peer_id, "-f", str(alice.spec_path))
    assert added.returncode == 0, added.stderr
    alice.wait_for(
        lambda: (
            [p["state"] for p in alice.rpc("peers.list") if p["name"] == "bob"] == ["connected"]
        ),
        timeout=10,
        what="bob shown connected",
    )
