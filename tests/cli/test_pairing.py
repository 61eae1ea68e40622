"""`gate peers invite|accept|pending|approve|ignore`: pairing two real nodes by invite, a
pending request approved or ignored, and bad input refused with exit 2 and nothing written.

The end-to-end tests need the pairing methods in the control server's table and the p2p
component handing its PendingPeers to admission and hello; until then they are expected
to fail (strict: once wired, each one passing fails the run until its marker goes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gate_runner.identity import Identity
from gate_runner.spec import load_spec_file
from gate_runner.wire.invite import make_invite
from tests.cli.conftest import Gate, node_id
from tests.rig import GateNode, add_to_spec, make_node, peers_yaml, run_gate

CAROL = node_id("carol").peer_id


# -- input checked before the node is asked ----------------------------------------------------


@pytest.mark.parametrize("command", [["accept", "gate-invite:v1:x"], ["approve", CAROL]])
@pytest.mark.parametrize("flags", [["--models", "llama3*"], ["--rpm", "60"]])
def test_what_a_peer_may_use_needs_trusted(
    gate: Gate, command: list[str], flags: list[str]
) -> None:
    result = gate("peers", *command, *flags)
    assert result.returncode == 2, result.stderr
    assert "add --trusted" in result.stderr and flags[0] in result.stderr


@pytest.mark.parametrize("ttl", ["40d", "30s", "soon", "7"])
def test_an_invite_lifetime_is_a_duration_from_a_minute_to_a_month(gate: Gate, ttl: str) -> None:
    result = gate("peers", "invite", "--ttl", ttl)
    assert result.returncode == 2
    assert "--ttl" in result.stderr


def test_a_five_megabyte_paste_on_stdin_is_refused_fast(
    tmp_path: Path, env: dict[str, str]
) -> None:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gate_runner", "peers", "accept", "-"],
        input="gate-invite:v1:" + "A" * (5 << 20),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "far more than an invite" in result.stderr
    assert time.monotonic() - began < 10  # the interpreter's start is most of it


# -- against running nodes ---------------------------------------------------------------------


def _gate(node: GateNode, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_gate(*args, "-f", str(node.spec_path), input=stdin)


def _json(node: GateNode, *args: str) -> Any:
    result = _gate(node, *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _peers(node: GateNode) -> list[dict[str, Any]]:
    spec = load_spec_file(node.spec_path, env={}).document["spec"]
    peers: list[dict[str, Any]] = spec.get("peers") or []
    return peers


def _allow(node: GateNode) -> list[dict[str, Any]]:
    spec = load_spec_file(node.spec_path, env={}).document["spec"]
    allow: list[dict[str, Any]] = (spec.get("trust") or {}).get("allow") or []
    return allow


def _pair(node_factory: type[GateNode], tmp_path: Path) -> tuple[GateNode, Identity, GateNode]:
    """alice invites, bob accepts (trusting alice, so his hello tells her his name) and
    dials her; returns once alice lists bob's request."""
    alice, _ = make_node(node_factory, tmp_path / "a", "alice")
    bob, bob_key = make_node(node_factory, tmp_path / "b", "bob")
    alice.start()
    bob.start()
    alice.wait_for(lambda: alice.component_ready("p2p/p2p"), timeout=20, what="alice's p2p")
    invite = _json(alice, "peers", "invite")
    assert invite["addrs"] == [f"/ip4/127.0.0.1/tcp/{alice.p2p_port}"]
    accepted = _gate(bob, "peers", "accept", "-", "--trusted", stdin=invite["invite"])
    assert accepted.returncode == 0, accepted.stderr
    assert f"added peer alice ({invite['peerId']})" in accepted.stdout
    (entry,) = _peers(bob)
    assert entry == {"name": "alice", "id": invite["peerId"], "addrs": invite["addrs"]}
    assert _allow(bob) == [{"peer": "alice"}]
    alice.wait_for(
        lambda: bool(alice.rpc("peers.pending")), timeout=30, what="bob's pending request"
    )
    return alice, bob_key, bob


@pytest.mark.e2e
def test_pairing_by_invite_and_approving_the_request(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    alice, bob_key, bob = _pair(node_factory, tmp_path)
    before = alice.spec_path.read_text()
    (request,) = _json(alice, "peers", "pending")
    assert request["peerId"] == bob_key.node_id.peer_id
    assert request["name"] == "bob"
    assert request["count"] >= 1
    table = _gate(alice, "peers", "pending")
    assert "PEER ID" in table.stdout and bob_key.node_id.peer_id in table.stdout
    assert alice.spec_path.read_text() == before, "nothing reaches the spec before approval"

    approved = _gate(alice, "peers", "approve", bob_key.node_id.peer_id, "--trusted")
    assert approved.returncode == 0, approved.stderr
    assert _peers(alice) == [{"name": "bob", "id": bob_key.node_id.peer_id}]
    assert _allow(alice) == [{"peer": "bob"}]
    assert _json(alice, "peers", "pending") == []
    # Each now knows the other: bob's link to alice is up and she calls him by name.
    bob.wait_for(
        lambda: any(
            p["name"] == "alice" and p["state"] == "connected" for p in bob.rpc("peers.list")
        ),
        timeout=20,
        what="bob's link to alice",
    )
    alice.wait_for(
        lambda: any(p["name"] == "bob" and p["trusted"] for p in alice.rpc("peers.list")),
        timeout=20,
        what="bob in alice's peers",
    )


@pytest.mark.e2e
def test_an_ignored_request_changes_nothing(tmp_path: Path, node_factory: type[GateNode]) -> None:
    alice, bob_key, _ = _pair(node_factory, tmp_path)
    before = alice.spec_path.read_text()
    generation = alice.generation()
    ignored = _gate(alice, "peers", "ignore", bob_key.node_id.peer_id)
    assert ignored.returncode == 0, ignored.stderr
    assert _json(alice, "peers", "pending") == []
    time.sleep(6)  # bob keeps saying hello (every 5 s): his request stays ignored
    assert _json(alice, "peers", "pending") == []
    assert alice.spec_path.read_text() == before
    assert alice.generation() == generation
    again = _gate(alice, "peers", "ignore", bob_key.node_id.peer_id)
    assert again.returncode == 2 and "no pending request" in again.stderr


@pytest.mark.e2e
def test_bad_invites_are_refused_and_nothing_is_written(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    alice, alice_key = make_node(node_factory, tmp_path / "a", "alice")
    add_to_spec(alice, peers_yaml(f"{{name: carol, id: {CAROL}}}"))
    alice.start()
    before = alice.spec_path.read_text()
    own = _json(alice, "peers", "invite")["invite"]
    friend = Identity.generate()
    now = time.time()
    good = make_invite(identity=friend, name="dave", addrs=[], ttl=3600, now=now).text
    i = len(good) // 2
    cases = {
        "this node's own": own,
        "expired": make_invite(
            identity=friend, name="dave", addrs=[], ttl=3600, now=now - 7200
        ).text,
        "signature does not match": good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :],
        "already in the spec": make_invite(
            identity=friend, name="carol", addrs=[], ttl=3600, now=now
        ).text,
        "not a Gate invite": "hello, add me",
        "cut short": good[:-30],
    }
    for words, text in cases.items():
        result = _gate(alice, "peers", "accept", text)
        assert result.returncode == 2, (words, result.stderr)
        assert words in result.stderr, (words, result.stderr)
    assert alice.spec_path.read_text() == before
    taken = _gate(alice, "peers", "accept", cases["already in the spec"])
    assert "--name" in taken.stderr
    renamed = _gate(alice, "peers", "accept", cases["already in the spec"], "--name", "dave")
    assert renamed.returncode == 0, renamed.stderr
    assert [p["name"] for p in _peers(alice)] == ["carol", "dave"]
    assert alice_key.node_id.peer_id not in {p["id"] for p in _peers(alice)}


@pytest.mark.e2e
def test_approve_needs_a_request(tmp_path: Path, node_factory: type[GateNode]) -> None:
    alice, _ = make_node(node_factory, tmp_path / "a", "alice")
    alice.start()
    result = _gate(alice, "peers", "approve", CAROL, "--name", "carol")
    assert result.returncode == 2
    assert "no pending request" in result.stderr
    wrong = _gate(alice, "peers", "approve", "not-an-id", "--name", "carol")
    assert wrong.returncode == 2 and "not a peer id" in wrong.stderr
    assert _peers(alice) == []
