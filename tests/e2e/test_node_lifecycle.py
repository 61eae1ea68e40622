"""`gate up` as a real process: readiness, hot reload, apply, rollback, bad edits, shutdown."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from tests.rig import GateNode, node_yaml, run_gate

pytestmark = pytest.mark.e2e

TIMER = """\
  debug:
    timers:
      - {name: t1, interval: 1s}
"""


@pytest.fixture
def timer_node(node_factory: type[GateNode], tmp_path: Path) -> GateNode:
    """A node run by tests/timer.py: gate up with the test-only timer component registered."""

    class TimerNode(node_factory):  # type: ignore[valid-type,misc]
        module = "tests.timer"

    n = TimerNode(tmp_path)
    n.start()
    return n


def edit(node: GateNode, old: str, new: str) -> None:
    text = node.spec_path.read_text()
    assert old in text
    node.spec_path.write_text(text.replace(old, new))


def save_by_rename(node: GateNode, text: str) -> None:
    tmp = node.spec_path.with_name(".gate.yaml.swp")
    tmp.write_text(text)
    os.replace(tmp, node.spec_path)


def component(node: GateNode, key: str) -> dict | None:
    status = node.status()
    assert status is not None
    return next((c for c in status["components"] if f"{c['kind']}/{c['key']}" == key), None)


def test_up_is_ready_and_reports_status(node: GateNode) -> None:
    status = node.status()
    assert status is not None
    assert status["name"] == "test-node"
    assert status["identity"]["peerId"].startswith("12D3KooW")
    assert len(status["identity"]["hex"]) == 64 and len(status["identity"]["label"]) == 52
    assert status["spec"]["generation"] == 1
    assert status["spec"]["observedGeneration"] == 1
    assert status["spec"]["lastError"] is None
    control = component(node, "control/control")
    assert control is not None
    ready = control["conditions"][0]
    assert ready["type"] == "Ready" and ready["status"] is True
    assert ready["message"] == f"127.0.0.1:{node.control_port}"
    # Key and token are created private.
    for name in ("identity.pem", "control.token", "state.db"):
        mode = stat.S_IMODE((node.data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_edit_in_place_and_by_rename_bump_the_generation(node: GateNode) -> None:
    edit(node, "name: test-node", "name: renamed")
    node.wait_for(lambda: node.generation() == 2, timeout=5, what="generation 2")
    assert node.status()["name"] == "renamed"  # type: ignore[index]

    save_by_rename(node, node.spec_path.read_text().replace("name: renamed", "name: again"))
    node.wait_for(lambda: node.generation() == 3, timeout=5, what="generation 3")
    # An editor that touches the file without changing it makes no new generation.
    node.spec_path.write_text(node.spec_path.read_text())
    node.wait_for(
        lambda: node.status()["spec"]["observedGeneration"] == 3,
        timeout=5,  # type: ignore[index]
        what="observed 3",
    )
    history = node.rpc("spec.history")
    assert [h["generation"] for h in history] == [3, 2, 1]


def test_two_quick_saves_make_one_apply_of_the_last_content(node: GateNode) -> None:
    edit(node, "name: test-node", "name: first")
    edit(node, "name: first", "name: second")
    node.wait_for(lambda: node.status()["name"] == "second", timeout=5, what="second")  # type: ignore[index]
    assert node.generation() == 2


PEER = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8)
)


def _replace(old: str, new: str):  # type: ignore[no-untyped-def]
    return lambda text: text.replace(old, new, 1)


BAD_EDITS = {
    "yaml syntax": (_replace("name: test-node", "name: [oops"), "gate.yaml:"),
    "tab indentation": (_replace("  listen:", "\tlisten:"), "tab"),
    "duplicate key": (_replace("  listen:", "  dataDir: /x\n  listen:"), "duplicate"),
    "non-mapping root": (lambda text: "- just\n- a list\n", "mapping"),
    "not utf-8": (lambda text: text.replace("test-node", "caf\udce9"), "UTF-8"),
    "alias bomb": (lambda text: BOMB, "alias"),
    "50 MB file": (lambda text: text + "#" * (50 << 20), "too large"),
    "unknown key": (_replace("  listen:", "  listne:"), "listne"),
    "wrong type": (_replace("enabled: false", "enabled: maybe"), "spec.providers"),
    "bad duration": (
        lambda text: text + "  routing:\n    retry: {initialBackoff: soon}\n",
        "initialBackoff",
    ),
    "bad peer id": (lambda text: text + "  peers:\n    - {name: bob, id: nope}\n", "peer id"),
    "duplicate peer names": (
        lambda text: (
            text + f"  peers:\n    - {{name: bob, id: {PEER}}}\n    - {{name: bob, id: {PEER}}}\n"
        ),
        "bob",
    ),
    "duplicate provider names": (
        lambda text: (
            text + "    static:\n"
            "      - {name: o, kind: ollama, url: http://127.0.0.1:11434}\n"
            "      - {name: o, kind: ollama, url: http://127.0.0.1:11435}\n"
        ),
        "duplicate",
    ),
    "two listeners on one port": (
        lambda text: text.replace("api: 127.0.0.1:", "api: 127.0.0.1:1").replace(
            "control: 127.0.0.1:", "control: 127.0.0.1:1"
        ),
        "port",
    ),
    "dataDir moved while running": (
        _replace("dataDir: ", "dataDir: /tmp/elsewhere"),
        "cannot change while the node runs",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EDITS))
def test_bad_edit_is_rejected_and_the_node_keeps_serving(node: GateNode, case: str) -> None:
    mutate, needle = BAD_EDITS[case]
    good_text = node.spec_path.read_text()
    if case == "two listeners on one port":
        # Make api and control the same port.
        bad_text = good_text.replace(
            f"api: 127.0.0.1:{node.api_port}", f"api: 127.0.0.1:{node.control_port}"
        )
    else:
        bad_text = mutate(good_text)
    node.spec_path.write_bytes(bad_text.encode("utf-8", "surrogateescape"))
    node.wait_for(
        lambda: node.status()["spec"]["lastError"] is not None,
        timeout=5,
        what="lastError",  # type: ignore[index]
    )
    status = node.status()
    assert status is not None
    error = status["spec"]["lastError"]
    assert str(node.spec_path) in error
    assert needle.lower() in error.lower(), error
    assert status["spec"]["generation"] == 1  # still the last good spec
    assert component(node, "control/control")["conditions"][0]["status"] is True  # type: ignore[index]
    assert any(
        r.get("level") == "error" and "rejected spec" in r["msg"] for r in node.log_records()
    )
    # Fixing the file clears the error; the fixed file equals generation 1, so no new one.
    node.spec_path.write_text(good_text)
    node.wait_for(lambda: node.status()["spec"]["lastError"] is None, timeout=5, what="cleared")  # type: ignore[index]
    assert node.generation() == 1


def test_deleted_spec_file_keeps_the_node_running(node: GateNode) -> None:
    text = node.spec_path.read_text()
    node.spec_path.unlink()
    node.wait_for(
        lambda: "deleted" in (node.status()["spec"]["lastError"] or ""),
        timeout=5,  # type: ignore[index]
        what="deletion reported",
    )
    assert node.generation() == 1
    got = run_gate(
        "get",
        "--control",
        f"127.0.0.1:{node.control_port}",
        env={**os.environ, "GATE_TOKEN": node.token},
    )
    assert got.returncode == 0, got.stderr
    assert "name: test-node" in got.stdout and "apiVersion: gate.hellas.ai/v1" in got.stdout
    node.spec_path.write_text(text.replace("name: test-node", "name: restored"))
    node.wait_for(lambda: node.status()["name"] == "restored", timeout=5, what="restored")  # type: ignore[index]
    assert node.status()["spec"]["lastError"] is None  # type: ignore[index]


def test_apply_prints_diff_writes_file_keeping_comments_and_converges(
    timer_node: GateNode, tmp_path: Path
) -> None:
    node = timer_node
    other = tmp_path / "other.yaml"
    other.write_text(node.spec_path.read_text().replace("name: test-node", "name: applied") + TIMER)
    result = run_gate("apply", "-f", str(other))
    assert result.returncode == 0, result.stderr
    assert "-  name: test-node" in result.stdout and "+  name: applied" in result.stdout
    assert "applied generation 2, converged" in result.stdout
    assert component(node, "timer/t1") is not None
    text = node.spec_path.read_text()
    assert "# test node spec" in text and "# the node's name" in text  # comments kept
    assert "name: applied" in text

    # Identical apply: no new generation.
    again = run_gate("apply", "-f", str(other))
    assert again.returncode == 0 and "no changes: generation stays 2" in again.stdout

    rolled = run_gate("rollback", "-f", str(node.spec_path))
    assert rolled.returncode == 0, rolled.stderr
    assert "rolled back to generation 1 as generation 3" in rolled.stdout
    status = node.status()
    assert status["name"] == "test-node" and component(node, "timer/t1") is None  # type: ignore[index]
    assert "name: test-node" in node.spec_path.read_text()


def test_apply_dry_run_and_invalid_apply_change_nothing(node: GateNode, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(node.spec_path.read_text().replace("name: test-node", "name: dry"))
    result = run_gate("apply", "-f", str(other), "--dry-run")
    assert result.returncode == 0 and "dry run" in result.stdout
    assert node.generation() == 1

    other.write_text(node.spec_path.read_text().replace("api: 127.0.0.1", "api: 127.0.0.1x"))
    bad = run_gate("apply", "-f", str(other))
    assert bad.returncode == 2
    assert f"{other}:" in bad.stderr and "spec.listen.api" in bad.stderr
    assert node.generation() == 1
    assert "name: test-node" in node.spec_path.read_text()


def test_stale_expected_generation_is_a_conflict(node: GateNode) -> None:
    text = node.spec_path.read_text().replace("name: test-node", "name: newer")
    reply = node.rpc_raw("spec.apply", {"yaml": text, "expectedGeneration": 7})
    assert reply["error"]["code"] == -32001
    assert reply["error"]["data"] == {"expected": 7, "current": 1}
    assert node.generation() == 1
    ok = node.rpc("spec.apply", {"yaml": text, "expectedGeneration": 1})
    assert ok["generation"] == 2 and ok["converged"] is True


def test_timer_component_plan_update_and_stop(timer_node: GateNode) -> None:
    node = timer_node
    node.spec_path.write_text(node.spec_path.read_text() + TIMER)
    node.wait_for(lambda: component(node, "timer/t1") is not None, timeout=5, what="timer")
    edit(node, "interval: 1s", "interval: 2s")
    node.wait_for(lambda: node.generation() == 3, timeout=5, what="gen 3")
    node.wait_for(
        lambda: component(node, "timer/t1")["observedGeneration"] == 3,  # type: ignore[index]
        timeout=5,
        what="observed",
    )
    timer = component(node, "timer/t1")
    assert timer is not None and timer["restarts"] == 0  # updated in place
    assert timer["conditions"][0]["message"] == "every 2s"
    control = component(node, "control/control")
    assert control is not None and control["restarts"] == 0  # untouched by the edit
    edit(node, TIMER.replace("1s", "2s"), "")
    node.wait_for(lambda: component(node, "timer/t1") is None, timeout=5, what="timer stopped")


def test_moving_the_control_port_restarts_only_control(node: GateNode) -> None:
    from tests.rig import free_port

    new_port = free_port()
    text = node.spec_path.read_text().replace(
        f"control: 127.0.0.1:{node.control_port}", f"control: 127.0.0.1:{new_port}"
    )
    result = node.rpc("spec.apply", {"yaml": text})
    assert result["generation"] == 2
    node.control_port = new_port
    node.wait_for(lambda: node.status() is not None, timeout=5, what="control on new port")
    assert component(node, "control/control")["restarts"] == 1  # type: ignore[index]


def test_sigterm_shuts_down_gracefully(node: GateNode) -> None:
    pidfile = node.data_dir / "gate.pid"
    assert pidfile.read_text().strip() == str(node.proc.pid)  # type: ignore[union-attr]
    assert node.stop(timeout=10) == 0
    assert not pidfile.exists()
    assert any(r["msg"] == "node stopped" for r in node.log_records())


def test_rpc_requires_the_token(node: GateNode) -> None:
    import httpx

    url = f"http://127.0.0.1:{node.control_port}/rpc"
    body = {"jsonrpc": "2.0", "method": "node.status", "id": 1}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    evil = httpx.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {node.token}", "Host": "evil.example:8145"},
    )
    assert evil.status_code == 421


def test_spec_get_returns_the_document(node: GateNode) -> None:
    result = node.rpc("spec.get")
    assert result["generation"] == 1
    assert result["document"]["metadata"]["name"] == "test-node"
    assert "apiVersion: gate.hellas.ai/v1" in result["yaml"]


def test_detach_and_down(tmp_path: Path) -> None:
    from tests.rig import free_port

    spec = tmp_path / "gate.yaml"
    spec.write_text(node_yaml(tmp_path, control=free_port(), api=free_port(), p2p=free_port()))
    up = run_gate("up", "-f", str(spec), "--detach")
    assert up.returncode == 0, up.stderr + up.stdout
    assert "running in the background" in up.stdout
    pid = int((tmp_path / "data" / "gate.pid").read_text())
    status = run_gate("status", "-f", str(spec), "-o", "json")
    assert status.returncode == 0 and '"generation": 1' in status.stdout
    down = run_gate("down", "-f", str(spec))
    assert down.returncode == 0, down.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_second_node_on_the_same_data_dir_is_refused(node: GateNode) -> None:
    result = run_gate("up", "-f", str(node.spec_path), timeout=15)
    assert result.returncode == 1
    assert "already running" in result.stderr


def test_unwritable_data_dir_is_refused(tmp_path: Path) -> None:
    from tests.rig import free_port

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where dataDir should be")
    text = node_yaml(tmp_path, control=free_port(), api=free_port(), p2p=free_port())
    spec = tmp_path / "gate.yaml"
    spec.write_text(text.replace(str(tmp_path / "data"), str(blocker / "data")))
    result = run_gate("up", "-f", str(spec))
    assert result.returncode == 1
    assert "not writable" in result.stderr and "spec.dataDir" in result.stderr


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        pytest.param(None, 0o600, None, id="missing key is generated"),
        pytest.param(b"not a key", 0o600, "corrupt", id="corrupt key"),
        pytest.param("good", 0o644, "chmod 600", id="world-readable key"),
    ],
)
def test_key_file_checks(
    tmp_path: Path, content: bytes | str | None, mode: int, expected: str | None
) -> None:
    from gate_runner.identity import Identity

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    key = data / "identity.pem"
    if content is not None:
        key.write_bytes(Identity.generate().to_pem() if content == "good" else content)  # type: ignore[arg-type]
        key.chmod(mode)
    node = GateNode(tmp_path)  # its spec puts dataDir at tmp_path / "data"
    if expected is None:
        try:
            node.start()
            assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        finally:
            node.stop()
        return
    spec = node.spec_path
    result = run_gate("up", "-f", str(spec))
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr and str(key) in result.stderr
    assert key.read_bytes()  # never replaced or deleted


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    from tests.rig import ROOT

    ok = run_gate("validate", "-f", str(ROOT / "gate.yaml.example"))
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: x}\n"
        "spec:\n  listen:\n    api: 127.0.0.1:31145\n  bogus: 1\n"
    )
    bad = run_gate("validate", "-f", str(broken))
    assert bad.returncode == 2
    assert f"{broken}:7:3 spec.bogus:" in bad.stderr


def test_sigint_shuts_down_gracefully(tmp_path: Path) -> None:
    node = GateNode(tmp_path)
    node.start()
    assert node.proc is not None
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(10) == 0
