"""The `control` component: the node's control server on spec.listen.control."""

from __future__ import annotations

__all__ = ("ControlComponent", "ControlSlice", "MethodTables")

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from anyio.abc import TaskStatus

from gate_runner.components.base import NodeHandle, RunContext
from gate_runner.components.control.app import build_app
from gate_runner.components.control.auth import Gatekeeper
from gate_runner.components.control.contract import contracts_for
from gate_runner.components.control.methods import CORE_METHODS, Serving, core_methods
from gate_runner.components.control.rpc import Dispatcher, Method
from gate_runner.components.httpserve import bind_tcp, serve_asgi
from gate_runner.spec import ControlSpec, HostPort
from gate_runner.wire.asgi import ASGIApp

if TYPE_CHECKING:
    from gate_runner.events import EventBus
    from gate_runner.identity import Identity
    from gate_runner.logs import LogFeed
    from gate_runner.metrics import Metrics

log = logging.getLogger(__name__)

S = TypeVar("S")

# A kind's own methods, made for each running control server (see methods.node_methods).
MethodTables = Callable[[Serving], Mapping[str, Method]]


@dataclass(frozen=True, slots=True)
class ControlSlice:
    address: HostPort
    security: ControlSpec = ControlSpec()


class ControlComponent(Generic[S]):
    """The control server of any kind: the core methods, plus the kind's own (``methods``).
    ``select`` picks the control listener out of the kind's spec."""

    kind: ClassVar[str] = "control"

    def __init__(
        self,
        *,
        select: Callable[[S], ControlSlice],
        node: NodeHandle,
        identity: Identity,
        token: str,
        events: EventBus,
        metrics: Metrics,
        logs: LogFeed,
        methods: MethodTables | None = None,
        api: ASGIApp | None = None,
    ) -> None:
        """``api``: the node's OpenAI API app, which the web UI reaches through this server
        (its "Try it" page); a kind without one (the relay) passes none."""
        self._select = select
        self._node = node
        self._identity = identity
        self._token = token
        self._events = events
        self._metrics = metrics
        self._logs = logs
        self._methods = methods
        self._api = api
        # Browser sessions outlive a restart of this component's server (control/auth.py).
        self._sessions: dict[str, float] = {}

    def desired(self, spec: S) -> Mapping[str, ControlSlice]:
        return {"control": self._select(spec)}

    def _dispatcher(self, serving: Serving) -> Dispatcher:
        own = dict(self._methods(serving)) if self._methods is not None else {}
        names = [*own, *CORE_METHODS]
        contracts = contracts_for(names)
        methods = core_methods(
            serving,
            identity=self._identity,
            metrics=self._metrics,
            logs=self._logs,
            contracts=contracts,
        )
        return Dispatcher({**methods, **own}, contracts)

    def _app(self, slice_: ControlSlice, port: int, ctx: RunContext) -> ASGIApp:
        security = slice_.security
        gatekeeper = Gatekeeper(
            token=self._token,
            bound_host=slice_.address.host,
            port=port,
            tls=security.tls,
            extra_origins=security.origins,
            sessions=self._sessions,
        )
        return build_app(
            dispatcher=self._dispatcher(Serving(self._node, ctx.stopping, gatekeeper)),
            gatekeeper=gatekeeper,
            events=self._events,
            stopping=ctx.stopping,
            metrics=self._metrics.render,
            api=self._api,
        )

    async def run(
        self, name: str, slice_: ControlSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        security = slice_.security
        sock, bound = bind_tcp(slice_.address, what="spec.listen.control")
        try:
            app = self._app(slice_, bound.port, ctx)
        except BaseException:
            sock.close()  # else every retry finds the port taken by this very socket
            raise
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
        # (its login links go with it; browser sessions stay): restart for any change.
        return False
