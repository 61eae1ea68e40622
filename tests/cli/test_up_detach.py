"""`gate up --detach` reports running only once every component is Ready, and fails (exit 1,
naming the component and why) when one fails for good at start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Gate
from tests.rig import free_port, node_yaml

pytestmark = pytest.mark.e2e

UNSET = "GATE_TEST_UNSET_API_KEY"


@pytest.fixture
def spec_path(tmp_path: Path, env: dict[str, str]) -> Iterator[Path]:
    """A node spec in tmp_path; whatever node it starts is stopped afterwards."""
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env.pop(UNSET, None)
    path = tmp_path / "gate.yaml"
    path.write_text(node_yaml(tmp_path, control=free_port(), api=free_port(), p2p=free_port()))
    yield path
    pidfile = tmp_path / "data" / "gate.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_detach_returns_once_every_component_is_ready(spec_path: Path, gate: Gate) -> None:
    up = gate("up", "-d")
    assert up.returncode == 0, up.stderr
    assert "running in the background" in up.stdout
    # At once, not some time later: p2p's "Loading" while it imports py-libp2p is waited out.
    status = json.loads(gate("status", "-o", "json").stdout)
    for component in status["components"]:
        ready = next(c for c in component["conditions"] if c["type"] == "Ready")
        assert ready["status"], component
    assert {c["kind"] for c in status["components"]} >= {"api", "control", "p2p"}
    down = gate("down")
    assert down.returncode == 0, down.stderr


def test_detach_fails_when_a_component_fails_at_start(spec_path: Path, gate: Gate) -> None:
    text = spec_path.read_text()
    spec_path.write_text(text.replace("  listen:\n", f"  listen:\n    apiKeys: [{UNSET}]\n", 1))
    up = gate("up", "-d")
    assert up.returncode == 1, (up.stdout, up.stderr)
    assert f"api/api failed: spec.listen.apiKeys names {UNSET}, which is not set" in up.stderr
    assert "running" not in up.stdout
    # It does not leave a half-started node behind.
    status = gate("status")
    assert status.returncode == 1
    assert "cannot reach" in status.stderr
