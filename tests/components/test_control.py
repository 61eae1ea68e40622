"""The `control` component: the control server of a node and of a relay, on real sockets,
answering JSON-RPC over HTTP with the token it was given."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gate_runner.components.control import ControlComponent, ControlSlice
from gate_runner.components.control.methods import Serving, node_methods
from gate_runner.components.p2p import P2PComponent
from gate_runner.events import EventBus
from gate_runner.identity import Identity
from gate_runner.logs import LogFeed
from gate_runner.metrics import Metrics
from gate_runner.reconcile.controller import Controller
from gate_runner.reconcile.kind import Runtime
from gate_runner.reconcile.relay import RELAY_KIND
from gate_runner.reconcile.scheduling import new_scheduler
from gate_runner.reconcile.supervisor import Supervisor
from gate_runner.spec import RELAY, NodeSpec, load_spec
from gate_runner.state import StateDB
from tests.components.parts import (
    FAST,
    Parts,
    condition,
    converge,
    load_node,
    node_parts,
    node_spec,
    status_of,
    wait_until,
)
from tests.rig import free_port

pytestmark = pytest.mark.anyio

TOKEN = secrets.token_urlsafe(32)


def _select(spec: NodeSpec) -> ControlSlice:
    return ControlSlice(address=spec.listen.control, security=spec.control)


def node_control(parts: Parts, *, methods: Any = None) -> ControlComponent[NodeSpec]:
    """The node's control component as reconcile/node.py wires it."""
    p2p = P2PComponent(
        identity=parts.identity,
        peers=parts.peers,
        providers=parts.providers,
        router=parts.router,
        state=parts.state,
    )

    def own(serving: Serving) -> dict[str, Any]:
        return node_methods(
            serving,
            requests=parts.requests,
            providers=parts.providers,
            peers=parts.peers,
            state=parts.state,
            probe=p2p.probe,
        )

    return ControlComponent[NodeSpec](
        select=_select,
        node=parts.controller,
        identity=parts.identity,
        token=TOKEN,
        events=parts.events,
        metrics=parts.metrics,
        logs=parts.logs,
        methods=own if methods is None else methods,
    )


async def rpc(address: str, method: str, *, token: str = TOKEN) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return await client.post(
            f"http://{address}/rpc",
            json={"jsonrpc": "2.0", "method": method, "id": 1},
            headers={"Authorization": f"Bearer {token}"},
        )


def test_desired_is_the_control_listener(tmp_path: Path) -> None:
    spec = node_spec(tmp_path)
    component = ControlComponent[NodeSpec](
        select=_select,
        node=None,  # type: ignore[arg-type]  # desired reads only the spec
        identity=Identity.generate(),
        token=TOKEN,
        events=EventBus(),
        metrics=Metrics(),
        logs=LogFeed(EventBus()),
    )
    (slice_,) = component.desired(spec).values()
    assert str(slice_.address) == "127.0.0.1:0" and slice_.security == spec.control
    assert component.desired(node_spec(tmp_path, trust={"mode": "public"})) == (
        component.desired(spec)
    )
    moved = node_spec(tmp_path, control={"origins": ["https://gate.example.net"]})
    assert component.desired(moved) != component.desired(spec)


async def test_listens_answers_rpc_and_restarts_for_any_change(tmp_path: Path) -> None:
    async with node_parts(load_node(tmp_path)) as parts:
        sup, control = parts.supervisor, node_control(parts)
        await converge(sup, control, parts.spec, generation=1)
        ready = condition(sup, "control", "control")
        assert (ready.status, ready.reason) == (True, "Listening")
        address = ready.message
        assert address.startswith("127.0.0.1:") and not address.endswith(":0")

        status = (await rpc(address, "node.status")).json()["result"]
        assert status["name"] == "unit"
        assert [c["kind"] for c in status["components"]] == ["control"]
        assert (await rpc(address, "peers.list")).json()["result"] == []
        assert (await rpc(address, "node.status", token="wrong")).status_code == 401

        # A new origin means a new gatekeeper: the server restarts (on a new port 0).
        origins = node_spec(tmp_path, control={"origins": ["https://gate.example.net"]})
        await converge(sup, control, origins, generation=2)
        assert status_of(sup, "control", "control").restarts == 1
        moved = condition(sup, "control", "control")
        assert moved.status and moved.message != address
        assert (await rpc(moved.message, "node.status")).status_code == 200


async def test_a_taken_port_is_transient_and_ready_once_freed(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        loaded = load_node(tmp_path, listen={"control": f"127.0.0.1:{port}"})
        async with node_parts(loaded) as parts:
            sup, control = parts.supervisor, node_control(parts)
            await converge(sup, control, parts.spec, generation=1, settle_timeout=2)
            taken = condition(sup, "control", "control")
            assert (taken.status, taken.reason) == (False, "TransientError")
            assert f"127.0.0.1:{port} is already in use" in taken.message

            blocker.close()
            await wait_until(lambda: status_of(sup, "control", "control").ready, what="Ready")
            ready = condition(sup, "control", "control")
            assert (ready.reason, ready.message) == ("Listening", f"127.0.0.1:{port}")
            assert status_of(sup, "control", "control").restarts >= 1
            assert (await rpc(ready.message, "node.status")).status_code == 200


async def test_a_failed_app_build_closes_its_socket_before_the_retry(tmp_path: Path) -> None:
    """The app is built after the bind: a failure there must not leave the port taken, or
    every retry after the first reports "already in use" instead of the real error."""

    async def handler(params: dict[str, Any]) -> Any:
        return None

    port = free_port()  # a fixed port: with port 0 every attempt would get a new one
    loaded = load_node(tmp_path, listen={"control": f"127.0.0.1:{port}"})
    async with node_parts(loaded) as parts:
        sup = parts.supervisor
        control = node_control(parts, methods=lambda serving: {"no.such.method": handler})
        await converge(sup, control, parts.spec, generation=1, settle_timeout=2)

        def second_attempt_failed() -> bool:
            return "retry 2 in" in condition(sup, "control", "control").message

        await wait_until(second_attempt_failed, what="the second attempt to fail")
        failed = condition(sup, "control", "control")
        assert (failed.status, failed.reason) == (False, "Crashed"), failed
        assert "methods without contracts: ['no.such.method']" in failed.message
        assert "already in use" not in failed.message


async def test_a_relay_serves_the_core_methods_only(tmp_path: Path) -> None:
    """reconcile/relay.py's control plane: node.status, but none of a node's own methods."""
    text = f"""\
apiVersion: gate.hellas.ai/v1
kind: Relay
metadata: {{name: relay1}}
spec:
  baseDomain: gate.test
  dataDir: {tmp_path}
  listen: {{control: 127.0.0.1:0}}
  publicAddresses: [127.0.0.1]
  dns:
    rfc2136:
      server: 127.0.0.1:53
      tsig: {{name: gate-relay, secretEnv: GATE_TEST_TSIG}}
"""
    loaded = load_spec(text, kind=RELAY, env={})
    events = EventBus()
    events.bind()
    identity = Identity.generate()
    state = StateDB(tmp_path / "state.db")
    try:
        async with new_scheduler() as scheduler, anyio.create_task_group() as tg:
            await scheduler.start_in_background()
            sup = Supervisor(task_group=tg, backoff=FAST)
            controller = Controller(
                boot=loaded,
                kind=RELAY,
                source=None,
                state=state,
                identity=identity,
                supervisor=sup,
                env={},
                events=events,
            )
            runtime = Runtime(
                spec=loaded.spec,
                node=controller,
                identity=identity,
                state=state,
                control_token=TOKEN,
                events=events,
                logs=LogFeed(events),
                metrics=Metrics(),
                scheduler=scheduler,
                task_group=tg,
            )
            async with RELAY_KIND.assemble(runtime) as assembly:
                (control,) = assembly.components
                await converge(sup, control, loaded.spec, generation=1)
                ready = condition(sup, "control", "control")
                assert (ready.status, ready.reason) == (True, "Listening")

                status = (await rpc(ready.message, "node.status")).json()["result"]
                assert status["name"] == "relay1" and "peers" not in status
                missing = (await rpc(ready.message, "peers.list")).json()
                assert missing["error"]["code"] == -32601  # method not found
                await sup.stop_all()
            tg.cancel_scope.cancel()
            await scheduler.stop()
    finally:
        state.close()
