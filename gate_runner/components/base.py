"""The protocol every component implements, and what the supervisor hands a running instance."""

from __future__ import annotations

__all__ = ("Component", "Configured", "NodeHandle", "RunContext", "Services")

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import anyio
from anyio.abc import TaskStatus

if TYPE_CHECKING:
    from apscheduler import AsyncScheduler

    from gate_runner.events import EventBus
    from gate_runner.identity import Identity
    from gate_runner.logs import LogFeed
    from gate_runner.metrics import Metrics
    from gate_runner.peers import PeerTable
    from gate_runner.providers.registry import ProviderRegistry
    from gate_runner.router import Proxy
    from gate_runner.spec import NodeSpec
    from gate_runner.state import StateDB
    from gate_runner.state.requests import RequestLog


class RunContext:
    """Handed to ``Component.run``: the graceful stop trigger and the instance's conditions.

    ``stopping`` is set when the supervisor wants the instance to finish; after the stop
    deadline the instance's cancel scope is cancelled instead.
    """

    def __init__(self, *, name: str, set_condition: Callable[[str, bool, str, str], None]) -> None:
        self.name = name
        self.stopping = anyio.Event()
        self._set_condition = set_condition

    def set_condition(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        self._set_condition(type_, status, reason, message)


class Configured(Protocol):
    """A node-wide service (the router) that components use and none of them configures:
    the controller hands it each accepted spec before the components converge to it."""

    def configure(self, spec: NodeSpec) -> None: ...


class Component(Protocol):
    """One kind of running thing. A new kind is one module plus one registry line.

    - ``desired`` derives the instances this kind should run from the spec: name -> slice.
      Slices are frozen and compared by value; an equal slice means no action.
    - ``run`` runs one instance until ``ctx.stopping`` is set (then returns) or it is
      cancelled. It calls ``task_status.started()`` once ready, after setting its Ready
      condition. It raises TransientError (retried with backoff) or PermanentError (waits
      for the slice to change).
    - ``update`` applies a changed slice to the running instance in place and returns True,
      or returns False to have the supervisor restart it.
    """

    kind: ClassVar[str]

    def desired(self, spec: NodeSpec) -> Mapping[str, Hashable]: ...

    async def run(
        self, name: str, slice_: Any, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None: ...

    async def update(self, name: str, old: Any, new: Any) -> bool: ...


class NodeHandle(Protocol):
    """What the control plane may ask of the node. Implemented by the reconciler's
    controller; components see only this protocol, so they never import the reconciler."""

    def status(self) -> dict[str, Any]: ...

    def spec_document(self) -> dict[str, Any]: ...

    async def validate(self, text: str, *, source: str) -> dict[str, Any]: ...

    async def diff(self, text: str, *, source: str) -> dict[str, Any]: ...

    async def apply(
        self,
        text: str,
        *,
        source: str,
        expected_generation: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...

    async def rollback(self, generation: int | None = None) -> dict[str, Any]: ...

    async def wait_observed(self, generation: int) -> None:
        """Return once every component has acted on ``generation`` (bound it with a timeout)."""

    async def history(self, limit: int = 50) -> list[dict[str, Any]]: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Services:
    """Node-wide things components may use. Built once by `gate up`."""

    node: NodeHandle
    identity: Identity
    state: StateDB
    data_dir: Path
    control_token: str
    providers: ProviderRegistry
    requests: RequestLog
    metrics: Metrics
    scheduler: AsyncScheduler
    peers: PeerTable
    router: Proxy  # the forwarding hot path, shared by the api and p2p components
    events: EventBus  # what happened, for the control plane's subscribers
    logs: LogFeed  # the recent log records (logs.tail)
