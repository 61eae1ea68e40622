"""The `certs` component: the public endpoint's ACME certificate, held by the node.

A stub until the relay lands (issue 13): it reports Ready=False, reason NotImplemented, for a
spec that turns the public endpoint on, so `gate status` says plainly that nothing serves it.
"""

from __future__ import annotations

__all__ = ("NOT_IMPLEMENTED", "CertsComponent")

from collections.abc import Mapping
from typing import ClassVar

from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext
from gate_runner.spec import NodeSpec, PublicEndpointSpec

# The Ready reason of a component that the spec asks for and this version cannot run yet.
NOT_IMPLEMENTED = "NotImplemented"


class CertsComponent:
    kind: ClassVar[str] = "certs"

    def desired(self, spec: NodeSpec) -> Mapping[str, PublicEndpointSpec]:
        public = spec.endpoints.public
        return {"public": public} if public.enabled else {}

    async def run(
        self,
        name: str,
        slice_: PublicEndpointSpec,
        ctx: RunContext,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        ctx.set_condition(
            "Ready",
            False,
            NOT_IMPLEMENTED,
            "public HTTPS through a relay is not in this version; "
            "set spec.endpoints.public.enabled: false",
        )
        task_status.started()
        await ctx.stopping.wait()

    async def update(self, name: str, old: PublicEndpointSpec, new: PublicEndpointSpec) -> bool:
        return True  # nothing runs that a new slice would change
