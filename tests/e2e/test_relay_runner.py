"""`gate relay up` on the generic runner: a relay with only its control plane starts,
reconciles relay.yaml, hot-reloads it and refuses a bad edit, with no change to the
controller (reconcile/relay.py is the whole of the Relay kind)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import GateNode, free_port, run_gate

pytestmark = pytest.mark.e2e


def relay_yaml(tmp: Path, *, control: int, name: str = "relay1") -> str:
    return f"""\
# test relay spec
apiVersion: gate.hellas.ai/v1
kind: Relay
metadata:
  name: {name}  # this relay's name
spec:
  baseDomain: gate.test
  dataDir: {tmp / "data"}
  listen:
    control: 127.0.0.1:{control}
  publicAddresses: [127.0.0.1]
  dns:
    rfc2136:
      server: 127.0.0.1:53
      tsig: {{name: gate-relay, secretEnv: GATE_TEST_TSIG}}
"""


class RelayNode(GateNode):
    command = ("relay", "up")

    def __init__(self, tmp: Path) -> None:
        control = free_port()
        super().__init__(tmp, spec_text=relay_yaml(tmp, control=control))
        self.control_port = control
        self.spec_path.rename(tmp / "relay.yaml")
        self.spec_path = tmp / "relay.yaml"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayNode]:
    node = RelayNode(tmp_path)
    node.start()
    yield node
    node.stop()


def test_relay_starts_with_its_control_plane_only(relay: RelayNode) -> None:
    status = relay.status()
    assert status is not None
    assert status["name"] == "relay1"
    assert [f"{c['kind']}/{c['key']}" for c in status["components"]] == ["control/control"]
    assert status["spec"]["generation"] == 1 and status["spec"]["observedGeneration"] == 1
    assert "peers" not in status  # a node's status extra, not a relay's
    spec = relay.rpc("spec.get")
    assert spec["document"]["kind"] == "Relay"
    # A node's own methods are not a relay's: the table is the kind's.
    reply = relay.rpc_raw("peers.list")
    assert reply["error"]["code"] == -32601
    discovered = relay.rpc("rpc.discover")
    names = {m["name"] for m in discovered["methods"]}
    assert "spec.apply" in names and "peers.list" not in names


def test_relay_hot_reloads_and_refuses_a_bad_edit(relay: RelayNode) -> None:
    text = relay.spec_path.read_text()
    relay.spec_path.write_text(text.replace("name: relay1", "name: relay9"))
    relay.wait_for(lambda: relay.status()["name"] == "relay9", timeout=10, what="reload")  # type: ignore[index]
    assert relay.generation() == 2

    relay.spec_path.write_text(text.replace("baseDomain: gate.test", "baseDomain: 7"))
    relay.wait_for(
        lambda: relay.status()["spec"]["lastError"] is not None,  # type: ignore[index]
        timeout=10,
        what="rejection",
    )
    status = relay.status()
    assert status is not None
    assert "baseDomain" in status["spec"]["lastError"]
    assert status["name"] == "relay9" and relay.generation() == 2  # still serving the last good


def test_relay_apply_converges_through_the_controller(relay: RelayNode) -> None:
    text = relay.spec_path.read_text().replace("name: relay1", "name: applied")
    result = relay.rpc("spec.apply", {"yaml": text, "expectedGeneration": 1})
    assert result["generation"] == 2 and result["converged"] is True
    assert "name: applied" in relay.spec_path.read_text()
    assert "# test relay spec" in relay.spec_path.read_text()  # comments kept


def test_a_node_spec_is_refused_by_relay_up(tmp_path: Path) -> None:
    spec = tmp_path / "gate.yaml"
    spec.write_text(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: n}\n"
        f"spec: {{dataDir: {tmp_path / 'data'}}}\n"
    )
    result = run_gate("relay", "up", "-f", str(spec))
    assert result.returncode == 2
    assert "this is a Node spec, but a Relay spec is needed" in result.stderr
    assert "gate up -f" in result.stderr  # the hint names the command that runs it
