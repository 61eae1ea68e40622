"""`gate peers add --trusted` and `gate peers ls`: knowing a peer and trusting it are separate
choices, and the listing shows both directions of each link."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gate_runner.spec import load_spec_file
from tests.cli.conftest import MODELS, Gate, node_id
from tests.rig import GateNode, ServerProcess, make_node, run_gate

CAROL = node_id("carol").peer_id


@pytest.mark.parametrize(
    "flags", [["--models", "llama3*"], ["--rpm", "60"], ["--concurrent", "4", "--models", "x"]]
)
def test_what_a_peer_may_use_needs_trusted(gate: Gate, flags: list[str]) -> None:
    result = gate("peers", "add", "carol", CAROL, *flags)
    assert result.returncode == 2, result.stderr
    assert "add --trusted" in result.stderr
    assert flags[0] in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_limits_are_positive_whole_numbers(gate: Gate, value: str) -> None:
    result = gate("peers", "add", "carol", CAROL, "--trusted", "--rpm", value)
    assert result.returncode == 2
    assert "--rpm" in result.stderr


def _row(table: str, name: str) -> str:
    (row,) = [line for line in table.splitlines() if line.split()[0] == name]
    return row


@pytest.mark.e2e
def test_peers_ls_shows_both_directions(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    """alice serves the Ollama fake and trusts bob. bob adds alice through the CLI, trusting
    her with some of his models, and carol as a peer he only knows."""
    alice, alice_key = make_node(
        node_factory,
        tmp_path / "a",
        "alice",
        f"    static:\n      - {{name: ollama, kind: ollama, url: '{ollama.url}'}}\n",
    )
    bob, bob_key = make_node(node_factory, tmp_path / "b", "bob")
    alice.spec_path.write_text(
        alice.spec_path.read_text()
        + f"  peers:\n    - {{name: bob, id: {bob_key.node_id.peer_id}}}\n"
        + "  trust:\n    allow: [{peer: bob}]\n"
    )
    alice.start()
    bob.start()
    spec = str(bob.spec_path)
    added = run_gate(
        "peers",
        "add",
        "alice",
        alice_key.node_id.peer_id,
        "--addr",
        f"/ip4/127.0.0.1/tcp/{alice.p2p_port}",
        "--trusted",
        "--models",
        "llama3*,qwen*",
        "--rpm",
        "60",
        "--concurrent",
        "4",
        "-f",
        spec,
    )
    assert added.returncode == 0, added.stderr
    known = run_gate("peers", "add", "carol", CAROL, "-f", spec)
    assert known.returncode == 0, known.stderr
    document = load_spec_file(bob.spec_path, env={}).document
    assert document["spec"]["trust"]["allow"] == [
        {
            "peer": "alice",
            "models": ["llama3*", "qwen*"],
            "rateLimit": {"requestsPerMinute": 60, "concurrent": 4},
        }
    ]
    bob.wait_for(
        lambda: any(p["name"] == "alice" and p["models"] for p in bob.rpc("peers.list")),
        timeout=20,
        what="alice's hello",
    )

    ls = run_gate("peers", "ls", "-f", spec)
    assert ls.returncode == 0, ls.stderr
    header = ls.stdout.splitlines()[0]
    assert "THEY OFFER ME" in header and "THEY MAY USE" in header
    alice_row = _row(ls.stdout, "alice")
    assert ", ".join(sorted(MODELS)) in alice_row
    assert "llama3*, qwen* (60/min, 4 at once)" in alice_row
    assert "(stale)" not in alice_row
    assert "nothing (not trusted)" in _row(ls.stdout, "carol")

    raw = {
        p["name"]: p for p in json.loads(run_gate("peers", "ls", "-f", spec, "-o", "json").stdout)
    }
    assert raw["alice"]["trusted"] is True
    assert raw["alice"]["sharedModels"] == ["llama3*", "qwen*"]
    assert raw["alice"]["rateLimit"] == {"requestsPerMinute": 60, "concurrent": 4}
    assert raw["carol"]["trusted"] is False
    assert raw["carol"]["sharedModels"] is None and raw["carol"]["rateLimit"] is None

    # alice goes away: what she offered is kept, and shown as her last offer.
    assert alice.stop() == 0
    bob.wait_for(
        lambda: any(p["name"] == "alice" and p["modelsStale"] for p in bob.rpc("peers.list")),
        timeout=20,
        what="alice's models stale",
    )
    ls = run_gate("peers", "ls", "-f", spec)
    alice_row = _row(ls.stdout, "alice")
    assert "disconnected" in alice_row
    assert f"{', '.join(sorted(MODELS))} (stale)" in alice_row


def test_bash_completes_the_trust_flags(gate: Gate) -> None:
    script = gate("completion", "bash").stdout
    probe = script + (
        'c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _gate; '
        'echo "${COMPREPLY[*]}"; }\n'
        "c gate peers add --\n"
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    offered = set(out.stdout.split())
    assert {"--trusted", "--models", "--rpm", "--concurrent", "--addr"} <= offered


def test_peers_add_help_shows_trust_examples(gate: Gate) -> None:
    shown = gate("peers", "add", "--help").stdout
    assert "--trusted --models 'llama3*,qwen*' --rpm 60 --concurrent 4" in shown
