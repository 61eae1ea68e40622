"""`gate up` on a damaged state.db: the node starts on a fresh one, the old one is set aside
as found, and `node.status` and `gate status` say so; gate.yaml and the key are untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate_runner.identity import Identity
from tests.rig import GateNode, run_gate
from tests.state.test_recovery import DAMAGE, emptied, fingerprint, make_history

pytestmark = pytest.mark.e2e


def state_component(node: GateNode) -> dict[str, dict[str, object]]:
    status = node.status()
    assert status is not None
    (state,) = [c for c in status["components"] if c["kind"] == "state"]
    assert state["key"] == "state.db"
    return {c["type"]: c for c in state["conditions"]}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_up_on_a_damaged_state_db_starts_fresh_and_says_so(
    tmp_path: Path, node_factory: type[GateNode], damage: str
) -> None:
    node = node_factory(tmp_path)
    node.data_dir.mkdir(mode=0o700)
    Identity.generate().save(node.data_dir / "identity.pem")
    path = node.data_dir / "state.db"
    make_history(path)  # 12 generations and 3000 requests
    damage_fn, reason = DAMAGE[damage]
    damage_fn(path)
    found = path.read_bytes()
    key, spec = fingerprint(node.data_dir / "identity.pem"), fingerprint(node.spec_path)

    node.start()

    (moved,) = node.data_dir.glob("state.db.corrupt-*")
    assert moved.read_bytes() == found
    assert node.generation() == 1  # the history restarted, and the node says why:
    conditions = state_component(node)
    ready, degraded = conditions["Ready"], conditions["Degraded"]
    assert ready["status"] is True and ready["reason"] == "Recovered"
    assert degraded["status"] is True and degraded["reason"] == "Recovered"
    for message in (str(ready["message"]), str(degraded["message"])):
        assert str(moved) in message and reason in message
        assert "restarted at generation 1" in message
    errors = [r for r in node.log_records() if r["level"] == "error"]
    assert any(str(moved) in r["msg"] and reason in r["msg"] for r in errors), errors

    # The table of `gate status` shows it in the state row.
    table = run_gate("status", "-f", str(node.spec_path))
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in table.stdout.splitlines() if line.startswith("state/state.db")]
    assert " yes " in row and "Recovered" in row and moved.name in row
    as_json = json.loads(run_gate("status", "-f", str(node.spec_path), "-o", "json").stdout)
    assert any(c["kind"] == "state" for c in as_json["components"])

    assert fingerprint(node.data_dir / "identity.pem") == key
    assert fingerprint(node.spec_path) == spec

    # A restart does not forget it; removing the set-aside file clears it.
    assert node.stop() == 0
    node.start()
    assert state_component(node)["Ready"]["reason"] == "Recovered"
    assert node.stop() == 0
    moved.unlink()
    node.start()
    conditions = state_component(node)
    assert conditions["Ready"]["reason"] == "Open"
    assert conditions["Degraded"]["status"] is False


def test_a_healthy_state_db_reads_open(node: GateNode) -> None:
    conditions = state_component(node)
    assert conditions["Ready"]["status"] is True and conditions["Ready"]["reason"] == "Open"
    assert conditions["Ready"]["message"] == str(node.data_dir / "state.db")
    assert conditions["Degraded"]["status"] is False
    assert list(node.data_dir.glob("state.db.*")) == []


def test_a_detached_node_says_so_too(tmp_path: Path) -> None:
    """`gate up -d` opens state.db in the foreground (to fail early) before the node does:
    the foreground moves the file and prints why, and the node still reports it."""
    node = GateNode(tmp_path)
    node.data_dir.mkdir(mode=0o700)
    make_history(node.data_dir / "state.db", requests=10)
    emptied(node.data_dir / "state.db")
    up = run_gate("up", "-d", "-f", str(node.spec_path))
    try:
        assert up.returncode == 0, up.stderr
        (moved,) = node.data_dir.glob("state.db.corrupt-*")
        assert "was empty (0 bytes)" in up.stderr and str(moved) in up.stderr
        ready = state_component(node)["Ready"]
        message = str(ready["message"])
        assert ready["reason"] == "Recovered"
        assert "was empty (0 bytes)" in message and str(moved) in message
        assert node.generation() == 1
    finally:
        down = run_gate("down", "-f", str(node.spec_path))
    assert down.returncode == 0, down.stderr
