"""The `control` component: the node's control server on spec.listen.control."""

from __future__ import annotations

__all__ = ("ControlComponent", "ControlSlice")

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext, Services
from gate_runner.components.control.app import build_app
from gate_runner.components.control.methods import build_methods
from gate_runner.components.control.rpc import Dispatcher
from gate_runner.components.httpserve import bind_tcp, serve_asgi
from gate_runner.spec import HostPort, NodeSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControlSlice:
    address: HostPort


class ControlComponent:
    kind: ClassVar[str] = "control"

    def __init__(self, services: Services) -> None:
        self._services = services

    def desired(self, spec: NodeSpec) -> Mapping[str, ControlSlice]:
        return {"control": ControlSlice(address=spec.listen.control)}

    async def run(
        self, name: str, slice_: ControlSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        sock = bind_tcp(slice_.address, what="spec.listen.control")
        bound = sock.getsockname()
        app = build_app(
            dispatcher=Dispatcher(build_methods(self._services, stopping=ctx.stopping)),
            token=self._services.control_token,
            bound_host=slice_.address.host,
            metrics=self._services.metrics.render,
        )
        ctx.set_condition("Ready", True, "Listening", f"{slice_.address.host}:{bound[1]}")
        log.info("control server listening on %s:%d", slice_.address.host, bound[1])
        await serve_asgi(app, sock, stopping=ctx.stopping, task_status=task_status)

    async def update(self, name: str, old: ControlSlice, new: ControlSlice) -> bool:
        return False  # only the address is in the slice, and a new address needs a new socket
