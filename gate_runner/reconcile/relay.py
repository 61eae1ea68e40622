"""The Relay kind (`gate relay up`): its spec and its components in start order.

For now a relay runs its control plane only (JSON-RPC, events, /metrics, hot reload of
relay.yaml); registration, the SNI listener and DNS are its next components (issue 13).
"""

from __future__ import annotations

__all__ = ("RELAY_KIND", "RelayKind")

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gate_runner.components.base import Component
from gate_runner.components.control import ControlComponent, ControlSlice
from gate_runner.reconcile.kind import Assembly, Runtime
from gate_runner.spec import RELAY, RelaySpec, SpecKind


def _control(spec: RelaySpec) -> ControlSlice:
    return ControlSlice(address=spec.listen.control)


@dataclass(frozen=True)
class RelayKind:
    @property
    def spec(self) -> SpecKind[RelaySpec]:
        return RELAY

    def control_certificate(self, spec: RelaySpec) -> Path | None:
        return None  # a relay's control plane is plain HTTP on loopback

    @contextlib.asynccontextmanager
    async def assemble(self, runtime: Runtime[RelaySpec]) -> AsyncIterator[Assembly[RelaySpec]]:
        components: list[Component[RelaySpec]] = [
            ControlComponent[RelaySpec](
                select=_control,
                node=runtime.node,
                identity=runtime.identity,
                token=runtime.control_token,
                events=runtime.events,
                metrics=runtime.metrics,
                logs=runtime.logs,
            ),
        ]
        yield Assembly(components=components)


RELAY_KIND = RelayKind()
