"""A spec broken by an edit does not lock the CLI out of its node: the node keeps running the
last good generation, and `gate status`, `logs`, `history` and `rollback` still reach it,
through the runtime record `gate up` leaves, or the few fields read from the file without
validating it. The commands that send the file (apply, diff, validate) still refuse it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate_runner.cli.client import read_spec_hints
from gate_runner.errors import SpecError
from gate_runner.spec import load_spec_file
from gate_runner.state.runtime import RUNTIME_FILE, NodeRuntime, pointer_path
from tests.cli.conftest import Gate
from tests.rig import GateNode, free_port, node_yaml

PEER = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def state_home(tmp_path: Path, env: dict[str, str]) -> Path:
    """The XDG state directory of the node and of every `gate` run by the test."""
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return tmp_path / "state"


@pytest.fixture
def live(node_factory: type[GateNode], tmp_path: Path, state_home: Path) -> GateNode:
    """A node whose spec is tmp_path/gate.yaml: `gate` runs there, so it needs no -f."""
    node = node_factory(tmp_path)
    node.start(env={"XDG_STATE_HOME": str(state_home)})
    return node


def _rejected(node: GateNode) -> bool:
    status = node.status()
    return status is not None and bool(status["spec"]["lastError"])


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("breakage", "error"),
    [("schema", "spec.bogus: unknown key"), ("yaml", "invalid YAML")],
)
def test_a_broken_spec_leaves_the_node_reachable(
    live: GateNode, gate: Gate, breakage: str, error: str
) -> None:
    added = gate("peers", "add", "bob", PEER)  # generation 2: something to roll back from
    assert added.returncode == 0, added.stderr
    good = live.spec_path.read_text()
    if breakage == "schema":
        live.spec_path.write_text(good.replace("spec:\n", "spec:\n  bogus: 1\n", 1))
    else:
        live.spec_path.write_text(good + "  listen: [\n")
    live.wait_for(lambda: _rejected(live), timeout=10, what="the edit rejected")

    status = gate("status")
    assert status.returncode == 0, status.stderr
    assert "last spec was rejected" in status.stdout
    assert error in status.stdout
    assert "generation 2" in status.stdout

    logs = gate("logs", "-n", "50")
    assert logs.returncode == 0, logs.stderr
    assert "rejected spec" in logs.stdout

    history = gate("history", "-o", "json")
    assert history.returncode == 0, history.stderr
    assert [e["generation"] for e in json.loads(history.stdout)] == [2, 1]

    # What sends the file itself still refuses it, before the node ever sees it.
    for command in ("apply", "diff", "validate"):
        refused = gate(command, "-f", "gate.yaml")
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert error in refused.stderr, command

    rollback = gate("rollback")
    assert rollback.returncode == 0, rollback.stderr
    assert "rolled back to generation 1 as generation 3" in rollback.stdout
    # The node wrote generation 1 back over the broken file: it loads, without bob.
    loaded = load_spec_file(live.spec_path, env={})
    assert loaded.document["spec"].get("peers") is None
    live.wait_for(lambda: not _rejected(live), timeout=10, what="the error cleared")


@pytest.mark.e2e
def test_the_runtime_record_is_private_and_gone_after_a_clean_stop(
    live: GateNode, state_home: Path
) -> None:
    directory = state_home / "gate"
    (pointer,) = directory.glob("node-*.json")
    record = live.data_dir / RUNTIME_FILE
    assert mode(directory) == 0o700
    assert mode(pointer) == 0o600
    assert mode(record) == 0o600
    runtime = NodeRuntime.from_dict(json.loads(record.read_text()))
    assert live.proc is not None
    assert runtime.pid == live.proc.pid
    assert runtime.control == f"http://127.0.0.1:{live.control_port}"
    assert runtime.token_file == live.data_dir / "control.token"
    assert runtime.spec == live.spec_path
    assert json.loads(pointer.read_text())["dataDir"] == str(live.data_dir)

    assert live.stop() == 0
    assert not record.exists()
    assert not pointer.exists()


@pytest.mark.e2e
def test_a_node_on_port_0_is_found_through_its_record_when_the_file_is_not_yaml(
    node_factory: type[GateNode], tmp_path: Path, state_home: Path, gate: Gate
) -> None:
    """listen.control on port 0: only the record knows the port the node bound. And once the
    file is not YAML at all, only the pointer (keyed by the file's path) leads to it."""
    node = node_factory(tmp_path, spec_text=node_yaml(tmp_path, control=0, api=0, p2p=free_port()))
    node.start(wait=False, env={"XDG_STATE_HOME": str(state_home)})
    deadline = time.monotonic() + 20
    while (status := gate("status", "-o", "json")).returncode != 0:
        assert time.monotonic() < deadline, status.stderr
        time.sleep(0.2)
    assert json.loads(status.stdout)["spec"]["generation"] == 1

    node.spec_path.write_text("spec: [\n\tnot: yaml\n")
    deadline = time.monotonic() + 10
    while True:
        status = gate("status", "-o", "json")
        assert status.returncode == 0, status.stderr
        last_error = json.loads(status.stdout)["spec"]["lastError"]
        if last_error:
            break
        assert time.monotonic() < deadline, "the node did not reject the file"
        time.sleep(0.2)
    assert "tab" in last_error


def test_a_record_whose_process_is_gone_is_ignored(
    tmp_path: Path, state_home: Path, gate: Gate
) -> None:
    """A node killed with SIGKILL leaves its record behind: the CLI must not take it for a
    live node (it would name a port someone else may have since), and reports the file."""
    spec_path = tmp_path / "gate.yaml"
    spec_path.write_text("spec: [\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    runtime = NodeRuntime(
        pid=dead.pid,
        control=f"http://127.0.0.1:{free_port()}",
        token_file=data_dir / "control.token",
        spec=spec_path,
        data_dir=data_dir,
    )
    (data_dir / "control.token").write_text("token\n")
    (data_dir / RUNTIME_FILE).write_text(json.dumps(runtime.to_dict()))
    pointer = pointer_path(spec_path, {"XDG_STATE_HOME": str(state_home)})
    pointer.parent.mkdir(parents=True)
    pointer.write_text(json.dumps({"spec": str(spec_path), "dataDir": str(data_dir)}))

    result = gate("status")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "gate.yaml:2:1: invalid YAML" in result.stderr
    assert "cannot reach" not in result.stderr


def test_spec_hints_take_defaults_overrides_and_relative_paths(tmp_path: Path) -> None:
    spec_path = tmp_path / "conf" / "gate.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(
        "apiVersion: gate.hellas.ai/v1\n"
        "kind: Node\n"
        "spec:\n"
        "  bogus: 1\n"  # the schema would refuse it; finding the node does not care
        "  dataDir: state\n"
        "  listen: {control: '127.0.0.1:9'}\n"
        "  control: {tls: {certFile: control.pem, keyFile: control.key}}\n"
    )
    hints = read_spec_hints(spec_path, env={})
    assert hints.control == "127.0.0.1:9"
    assert hints.data_dir == tmp_path / "conf" / "state"
    assert hints.tls_cert == tmp_path / "conf" / "state" / "control.pem"

    # GATE_* overrides win, as in the node; a relative dataDir from the environment is
    # relative to the current directory.
    env = {"GATE_LISTEN_CONTROL": "127.0.0.1:7", "GATE_DATA_DIR": "elsewhere"}
    hints = read_spec_hints(spec_path, env=env)
    assert hints.control == "127.0.0.1:7"
    assert hints.data_dir == Path.cwd() / "elsewhere"

    spec_path.write_text("apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: x}\n")
    hints = read_spec_hints(spec_path, env={})
    assert (hints.control, hints.tls_cert) == ("127.0.0.1:8145", None)
    assert hints.data_dir == Path.home() / ".local" / "share" / "gate"

    # An older apiVersion keeps the fields elsewhere.
    spec_path.write_text(
        "apiVersion: gate.hellas.ai/v1alpha1\n"
        "node: {dataDir: /srv/gate}\n"
        "web: {control: '127.0.0.1:6'}\n"
    )
    hints = read_spec_hints(spec_path, env={})
    assert (hints.control, hints.data_dir) == ("127.0.0.1:6", Path("/srv/gate"))


def test_spec_hints_refuse_what_cannot_locate_a_node(tmp_path: Path) -> None:
    spec_path = tmp_path / "gate.yaml"
    spec_path.write_text("spec:\n  listen:\n    control: 8145\n")
    with pytest.raises(SpecError) as caught:
        read_spec_hints(spec_path, env={})
    assert "gate.yaml:3:5 spec.listen.control: expected a string, not int" in str(caught.value)
    spec_path.write_text("spec: [\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        read_spec_hints(spec_path, env={})
