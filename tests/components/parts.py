"""Each component against a real small spec, driven by the real supervisor: the parts a node
hands its components (reconcile/node.py) are built here from the real classes, on trio.

A test builds one component with ``parts``, then converges it to a spec with ``converge``,
as the controller would, and reads the instance's conditions from the supervisor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml
from apscheduler import AsyncScheduler

from gate_runner.components.base import Component
from gate_runner.events import EventBus
from gate_runner.identity import Identity
from gate_runner.logs import LogFeed
from gate_runner.metrics import Metrics
from gate_runner.peers import PeerTable
from gate_runner.providers.registry import ProviderRegistry
from gate_runner.reconcile.controller import Controller
from gate_runner.reconcile.planner import Plan
from gate_runner.reconcile.scheduling import new_scheduler
from gate_runner.reconcile.status import ComponentStatus, Condition
from gate_runner.reconcile.supervisor import Backoff, Supervisor
from gate_runner.router import Proxy
from gate_runner.spec import NODE, LoadedSpec, NodeSpec, load_spec
from gate_runner.state import StateDB
from gate_runner.state.requests import RequestLog
from tests.fakes.ollama import DEFAULT_MODELS
from tests.fakes.ollama import serve as serve_ollama

# Restarts within a test's patience: the production backoff starts at 0.5 s.
FAST = Backoff(initial=0.05, maximum=0.2)


def node_text(data_dir: Path, **spec: Any) -> str:
    """A small node spec: every listener on loopback port 0 and discovery off. Keyword
    arguments are merged into ``spec:`` (a dict into a dict, key by key)."""
    body: dict[str, Any] = {
        "dataDir": str(data_dir),
        "listen": {
            "api": "127.0.0.1:0",
            "control": "127.0.0.1:0",
            "p2p": ["/ip4/127.0.0.1/tcp/0"],
        },
        "providers": {"discovery": {"enabled": False}},
    }
    _merge(body, spec)
    document = {
        "apiVersion": "gate.hellas.ai/v1",
        "kind": "Node",
        "metadata": {"name": "unit"},
        "spec": body,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def load_node(data_dir: Path, **spec: Any) -> LoadedSpec[NodeSpec]:
    return load_spec(node_text(data_dir, **spec), kind=NODE, env={})


def node_spec(data_dir: Path, **spec: Any) -> NodeSpec:
    return load_node(data_dir, **spec).spec


@dataclass
class Parts:
    """What reconcile/node.py builds before its components, each one the real thing."""

    spec: NodeSpec
    identity: Identity
    state: StateDB
    events: EventBus
    metrics: Metrics
    logs: LogFeed
    scheduler: AsyncScheduler
    providers: ProviderRegistry
    peers: PeerTable
    requests: RequestLog
    router: Proxy
    supervisor: Supervisor
    controller: Controller[NodeSpec]  # the control plane's NodeHandle
    task_group: anyio.abc.TaskGroup


@contextlib.asynccontextmanager
async def node_parts(loaded: LoadedSpec[NodeSpec]) -> AsyncIterator[Parts]:
    """The parts for ``loaded``'s spec, running; every instance is stopped on the way out."""
    spec = loaded.spec
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    events = EventBus()
    events.bind()
    identity = Identity.generate()
    state = StateDB(spec.data_dir / "state.db")
    try:
        async with new_scheduler() as scheduler, anyio.create_task_group() as tg:
            await scheduler.start_in_background()
            requests = RequestLog(state)
            providers = ProviderRegistry()
            peers = PeerTable(events=events)
            metrics = Metrics()
            router = Proxy(
                registry=providers,
                routing=spec.routing,
                node_name=spec.name,
                max_body=spec.limits.max_request_body,
                on_start=lambda: None,
                on_done=lambda outcome, started, latency: None,
                peers=peers,
            )
            router.configure(spec)
            await tg.start(requests.run)
            await tg.start(router.run)
            supervisor = Supervisor(task_group=tg, backoff=FAST, stop_timeout=5.0)
            controller = Controller(
                boot=loaded,
                kind=NODE,
                source=None,
                state=state,
                identity=identity,
                supervisor=supervisor,
                env={},
                events=events,
            )
            yield Parts(
                spec=spec,
                identity=identity,
                state=state,
                events=events,
                metrics=metrics,
                logs=LogFeed(events),
                scheduler=scheduler,
                providers=providers,
                peers=peers,
                requests=requests,
                router=router,
                supervisor=supervisor,
                controller=controller,
                task_group=tg,
            )
            await supervisor.stop_all()
            tg.cancel_scope.cancel()
            await scheduler.stop()
    finally:
        state.close()


def desired_of(component: Component[Any], spec: Any) -> dict[tuple[str, str], Any]:
    return {
        (component.kind, name): (component, slice_)
        for name, slice_ in component.desired(spec).items()
    }


async def converge(
    supervisor: Supervisor,
    component: Component[Any],
    spec: Any,
    *,
    generation: int,
    settle_timeout: float = 10.0,
) -> Plan:
    """One reconcile pass of ``component`` alone to ``spec``, as the controller makes it."""
    return await supervisor.apply(
        desired_of(component, spec), generation=generation, settle_timeout=settle_timeout
    )


def status_of(supervisor: Supervisor, kind: str, key: str) -> ComponentStatus:
    for status in supervisor.statuses():
        if (status.kind, status.key) == (kind, key):
            return status
    raise AssertionError(f"no instance {kind}/{key}: {supervisor.statuses()}")


def condition(supervisor: Supervisor, kind: str, key: str, type_: str = "Ready") -> Condition:
    cond = status_of(supervisor, kind, key).conditions.get(type_)
    assert cond is not None, f"{kind}/{key} has no {type_} condition"
    return cond


async def wait_until(check: Callable[[], bool], *, what: str, within: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``within`` seconds."""
    with anyio.move_on_after(within):
        while not check():
            await anyio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {within}s waiting for {what}")


@dataclass
class Engine:
    """A fake engine serving in this event loop."""

    url: str
    shutdown: anyio.Event
    stopped: anyio.Event

    async def stop(self) -> None:
        """Stop serving, and return once the port is closed."""
        self.shutdown.set()
        await self.stopped.wait()


@contextlib.asynccontextmanager
async def fake_ollama(models: tuple[str, ...] = DEFAULT_MODELS) -> AsyncIterator[Engine]:
    """The recorded-contract Ollama server (tests/fakes/ollama.py) on a free loopback port."""
    engine = Engine("", anyio.Event(), anyio.Event())

    async def run(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        try:
            await serve_ollama(
                port=0, models=models, shutdown=engine.shutdown, task_status=task_status
            )
        finally:
            engine.stopped.set()

    async with anyio.create_task_group() as tg:
        port = await tg.start(run)
        engine.url = f"http://127.0.0.1:{port}"
        try:
            yield engine
        finally:
            engine.shutdown.set()
