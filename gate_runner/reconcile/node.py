"""The Node kind (`gate up`): its spec, its node-wide services, its components in start order,
and its extras in node.status. The one place that wires a node's parts together."""

from __future__ import annotations

__all__ = ("NODE_KIND", "NodeKind")

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate_runner.components.api import ApiComponent
from gate_runner.components.api.app import ApiApp
from gate_runner.components.api.component import request_recorder
from gate_runner.components.base import Component
from gate_runner.components.certs import CertsComponent
from gate_runner.components.control import ControlComponent, ControlSlice
from gate_runner.components.control.methods import Serving, node_methods
from gate_runner.components.control.pairing import pairing_methods
from gate_runner.components.discovery import DiscoveryComponent
from gate_runner.components.p2p import P2PComponent
from gate_runner.components.providers import ProviderComponent
from gate_runner.components.sites import SitePolicy
from gate_runner.components.state import StateComponent
from gate_runner.httpclient import Watchdog
from gate_runner.peers import PeerTable
from gate_runner.providers.registry import ProviderRegistry
from gate_runner.reconcile.kind import Assembly, Runtime
from gate_runner.router import Proxy
from gate_runner.spec import NODE, NodeSpec, SpecKind
from gate_runner.state.pending import PendingPeers
from gate_runner.state.requests import RequestLog, RequestRecord


def _control(spec: NodeSpec) -> ControlSlice:
    return ControlSlice(address=spec.listen.control, security=spec.control)


@dataclass(frozen=True)
class NodeKind:
    """``extra`` components run after the node's own: a test's, or a build's plug-in."""

    extra: Sequence[Callable[[], Component[NodeSpec]]] = ()

    @property
    def spec(self) -> SpecKind[NodeSpec]:
        return NODE

    def control_certificate(self, spec: NodeSpec) -> Path | None:
        return spec.control.tls_cert

    @contextlib.asynccontextmanager
    async def assemble(self, runtime: Runtime[NodeSpec]) -> AsyncIterator[Assembly[NodeSpec]]:
        spec, events, tg = runtime.spec, runtime.events, runtime.task_group

        def on_record(record: RequestRecord) -> None:
            if events.listening("request.completed"):
                events.publish("request.completed", record.to_dict())

        requests = RequestLog(
            runtime.state,
            retention=spec.request_log.retention,
            max_age=spec.request_log.max_age,
            on_record=on_record,
        )
        providers = ProviderRegistry()
        peers = PeerTable(events=events)
        node_id = runtime.identity.node_id
        on_start, on_done = request_recorder(runtime.metrics, requests)
        router = Proxy(
            registry=providers,
            routing=spec.routing,
            node_name=spec.name,
            max_body=spec.limits.max_request_body,
            on_start=on_start,
            on_done=on_done,
            peers=peers,
            self_names=frozenset({node_id.peer_id, node_id.hex, node_id.label}),
        )
        # Read timeouts of every upstream connection, without a cancel scope per wait.
        await tg.start(Watchdog().run)
        await tg.start(requests.run)
        await tg.start(router.run)

        # Peers not in the spec that dialed in: kept for approval (peers.pending).
        def on_pending(peer_id: str, name: str | None) -> None:
            events.publish("peer.pending", {"peerId": peer_id, "name": name})

        pending = PendingPeers(runtime.state, on_record=on_pending)
        p2p = P2PComponent(
            identity=runtime.identity,
            peers=peers,
            providers=providers,
            router=router,
            state=runtime.state,
            pending=pending,
        )

        def methods(serving: Serving) -> dict[str, Any]:
            table = node_methods(
                serving,
                requests=requests,
                providers=providers,
                peers=peers,
                state=runtime.state,
                probe=p2p.probe,
            )
            table.update(
                pairing_methods(
                    node=serving.node,
                    identity=runtime.identity,
                    pending=pending,
                    listen_addrs=p2p.listen_addrs,
                    add_peer=table["peers.add"],
                )
            )
            return table

        def peer_status() -> dict[str, Any]:
            return {
                "peers": [
                    {
                        "name": p.name,
                        "peerId": p.peer_id,
                        "state": p.state,
                        "lastRttMs": p.last_rtt_ms,
                        "models": len(p.models),
                    }
                    for p in peers.all()
                ]
            }

        # The OpenAI API as the web UI reaches it through the control server ("Try it"): the
        # same router (so the same request log and limits) as the API port. The control
        # server's gatekeeper has checked the caller, so this app sees a local client and
        # asks for no API key: a logged-in session is the node's owner (control/app.py).
        ui_api = ApiApp(
            proxy=router,
            registry=providers,
            node_info=lambda: {"hex": node_id.hex, "name": router.node_name},
            sites=SitePolicy(bound_host="127.0.0.1"),
        )

        components: list[Component[NodeSpec]] = [
            StateComponent(state=runtime.state, requests=requests),
            ControlComponent[NodeSpec](
                select=_control,
                node=runtime.node,
                identity=runtime.identity,
                token=runtime.control_token,
                events=events,
                metrics=runtime.metrics,
                logs=runtime.logs,
                methods=methods,
                api=ui_api,
            ),
            ProviderComponent(providers=providers, scheduler=runtime.scheduler),
            DiscoveryComponent(providers=providers, scheduler=runtime.scheduler),
            p2p,
            ApiComponent(identity=runtime.identity, router=router, providers=providers),
            CertsComponent(),
            *(make() for make in self.extra),
        ]
        yield Assembly(components=components, services=(router,), status=peer_status)


NODE_KIND = NodeKind()
