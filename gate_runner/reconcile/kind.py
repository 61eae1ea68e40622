"""What a spec kind (Node, Relay) plugs into the runner: its spec, and how it assembles its
components and node-wide services from what the runner has built.

The runner, the controller and the supervisor know only this module's protocols; each kind's
module (reconcile/node.py, reconcile/relay.py) is the one place that names its components.
"""

from __future__ import annotations

__all__ = ("Assembly", "Kind", "KindSpec", "Runtime")

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from gate_runner.components.base import Component, Configured, NodeHandle

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from apscheduler import AsyncScheduler

    from gate_runner.events import EventBus
    from gate_runner.identity import Identity
    from gate_runner.logs import LogFeed
    from gate_runner.metrics import Metrics
    from gate_runner.spec import SpecKind
    from gate_runner.state import StateDB


class KindSpec(Protocol):
    """What the runner reads of every kind's spec."""

    @property
    def name(self) -> str: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def key_path(self) -> Path: ...


S = TypeVar("S", bound=KindSpec)


@dataclass(frozen=True, slots=True)
class Runtime(Generic[S]):
    """What the runner builds for every kind, handed to ``Kind.assemble``."""

    spec: S  # the boot spec
    node: NodeHandle  # the controller, for the control plane
    identity: Identity
    state: StateDB
    control_token: str
    events: EventBus
    logs: LogFeed
    metrics: Metrics
    scheduler: AsyncScheduler
    task_group: TaskGroup  # for the kind's long-lived services (started, never left running)


@dataclass(frozen=True, slots=True)
class Assembly(Generic[S]):
    """A kind's running parts: its components in start order, the node-wide services the
    controller configures from each accepted spec, and its extra fields of ``node.status``."""

    components: Sequence[Component[S]]
    services: Sequence[Configured[S]] = ()
    status: Callable[[], Mapping[str, Any]] = field(default=dict)


class Kind(Protocol[S]):
    """A spec kind as a plug-in of the runner."""

    @property
    def spec(self) -> SpecKind[S]:
        """The document kind and its typed spec."""

    def control_certificate(self, spec: S) -> Path | None:
        """The control plane's TLS certificate, for the CLI's runtime record (None: plain)."""

    def assemble(self, runtime: Runtime[S]) -> AbstractAsyncContextManager[Assembly[S]]:
        """Build the kind's services and components; the services run until the context exits."""
