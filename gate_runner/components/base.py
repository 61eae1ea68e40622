"""The protocol every component implements, and what the supervisor hands a running instance."""

from __future__ import annotations

__all__ = ("Component", "Configured", "NodeHandle", "RunContext")

from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import anyio
from anyio.abc import TaskStatus

# The spec type a component reads: NodeSpec for a node's components, RelaySpec for a relay's.
S_contra = TypeVar("S_contra", contravariant=True)


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


class Configured(Protocol[S_contra]):
    """A node-wide service (the router) that components use and none of them configures:
    the controller hands it each accepted spec before the components converge to it."""

    def configure(self, spec: S_contra) -> None: ...


class Component(Protocol[S_contra]):
    """One kind of running thing. A new kind is one module plus one line in its spec kind's
    registry (reconcile/node.py or reconcile/relay.py), which also hands it, by keyword, the
    node-wide objects its constructor asks for.

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

    def desired(self, spec: S_contra) -> Mapping[str, Hashable]: ...

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
