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
from gate_runner.components.control.auth import Gatekeeper
from gate_runner.components.control.contract import CONTRACTS
from gate_runner.components.control.methods import build_methods
from gate_runner.components.control.rpc import Dispatcher
from gate_runner.components.httpserve import bind_tcp, serve_asgi
from gate_runner.spec import ControlSpec, HostPort, NodeSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControlSlice:
    address: HostPort
    security: ControlSpec


class ControlComponent:
    kind: ClassVar[str] = "control"

    def __init__(self, services: Services) -> None:
        self._services = services

    def desired(self, spec: NodeSpec) -> Mapping[str, ControlSlice]:
        return {"control": ControlSlice(address=spec.listen.control, security=spec.control)}

    async def run(
        self, name: str, slice_: ControlSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        services = self._services
        security = slice_.security
        sock, bound = bind_tcp(slice_.address, what="spec.listen.control")
        port = bound.port
        gatekeeper = Gatekeeper(
            token=services.control_token,
            bound_host=slice_.address.host,
            port=port,
            tls=security.tls,
            extra_origins=security.origins,
        )
        methods = build_methods(services, stopping=ctx.stopping, gatekeeper=gatekeeper)
        app = build_app(
            dispatcher=Dispatcher(methods, CONTRACTS),
            gatekeeper=gatekeeper,
            events=services.events,
            stopping=ctx.stopping,
            node_name=lambda: str(services.node.status()["name"]),
            metrics=services.metrics.render,
        )
        tls = None
        if security.tls_cert is not None and security.tls_key is not None:
            tls = (security.tls_cert, security.tls_key)
        where = f"{'https' if tls else 'http'}://{bound}"
        if not slice_.address.loopback:
            log.warning(
                "the control plane listens on %s, reachable from the network%s",
                where,
                "" if tls else " in clear text (control.insecure is set)",
            )
        ctx.set_condition("Ready", True, "Listening", str(bound))
        log.info("control server listening on %s", where)
        await serve_asgi(app, sock, stopping=ctx.stopping, tls=tls, task_status=task_status)

    async def update(self, name: str, old: ControlSlice, new: ControlSlice) -> bool:
        # A new address needs a new socket, and new TLS settings or origins a new gatekeeper
        # (its login links and sessions go with it): restart for any change.
        return False
