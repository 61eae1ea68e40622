"""The `p2p` component itself: the libp2p host's wiring, its lifecycle, and in-place updates
of peers and trust; links, hello, admission and the ASGI adapter are its sibling modules."""

from __future__ import annotations

__all__ = ("P2PComponent", "P2PSlice")

import functools
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext
from gate_runner.components.p2p.admission import admit
from gate_runner.components.p2p.hello import (
    HELLO_PROTOCOL,
    answer_hello,
    forget_models,
    hello_for,
    register_models,
    say_hello,
    take_hello,
)
from gate_runner.components.p2p.links import Links, on_connected, on_disconnected
from gate_runner.errors import GateError
from gate_runner.spec import NodeSpec, PeerSpec, TrustSpec
from gate_runner.trust import RateLimiter, TrustPolicy

if TYPE_CHECKING:
    from gate_runner.identity import Identity
    from gate_runner.p2p import P2PHost, P2PHttpClient, P2PRequest, P2PStream, ResponseSender
    from gate_runner.peers import PeerTable
    from gate_runner.providers.registry import ProviderRegistry
    from gate_runner.router import Proxy
    from gate_runner.state import StateDB
    from gate_runner.state.pending import PendingPeers

# The component's one logger, under the name it had before it became a package.
log = logging.getLogger("gate_runner.components.p2p")


@dataclass(frozen=True, slots=True)
class P2PSlice:
    listen: tuple[str, ...]
    peers: tuple[PeerSpec, ...]
    trust: TrustSpec
    node_name: str


@dataclass(eq=False)
class _Live:
    host: P2PHost
    client: P2PHttpClient
    slice: P2PSlice
    policy: TrustPolicy
    limiter: RateLimiter = field(default_factory=RateLimiter)
    # Set right after the instance is made: its links say hello with this instance's terms.
    links: Links = field(init=False)


class P2PComponent:
    kind: ClassVar[str] = "p2p"

    def __init__(
        self,
        *,
        identity: Identity,
        peers: PeerTable,
        providers: ProviderRegistry,
        router: Proxy,
        state: StateDB,
        pending: PendingPeers | None = None,
    ) -> None:
        self._identity = identity
        self._peers = peers
        self._providers = providers
        self._router = router
        self._state = state
        self._pending = pending
        self._live: _Live | None = None
        # While the instance loads py-libp2p, in-place updates land here and are applied
        # as soon as the host is up.
        self._loading: P2PSlice | None = None
        self._warned: tuple[str, ...] = ()  # the untrusted peers last warned of

    def desired(self, spec: NodeSpec) -> Mapping[str, P2PSlice]:
        return {
            "p2p": P2PSlice(
                listen=spec.listen.p2p, peers=spec.peers, trust=spec.trust, node_name=spec.name
            )
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, name: str, slice_: P2PSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        # Importing py-libp2p takes 1.5-2.3 s (DESIGN.md 6): do it off the event loop, and
        # report started before it, so that the node is ready (control, API, local engines)
        # in well under 2 s while its P2P side comes up. Ready turns true once listening.
        ctx.set_condition("Ready", False, "Loading", "importing py-libp2p")
        self._policy(slice_)  # warn of untrusted peers now, not once libp2p has loaded
        self._loading = slice_
        task_status.started()
        p2p = await anyio.to_thread.run_sync(importlib.import_module, "gate_runner.p2p")
        host: P2PHost = p2p.P2PHost(seed=self._identity.seed, listen=slice_.listen)
        client: P2PHttpClient = p2p.P2PHttpClient(host)
        host.set_stream_handler(HELLO_PROTOCOL, self._on_hello_stream)

        async def serve_http(stream: P2PStream, remote: str) -> None:
            await p2p.serve_http_stream(stream, remote, self._on_request)

        host.set_stream_handler(p2p.HTTP_PROTOCOL, serve_http)
        host.on_connected = self._connected
        host.on_disconnected = self._disconnected
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(host.run)
                slice_, self._loading = self._loading or slice_, None
                live = self._live = _Live(host, client, slice_, self._policy(slice_))
                live.links = Links(
                    host=host,
                    peers=self._peers,
                    task_group=tg,
                    say_hello=functools.partial(self._say_hello, live),
                    forget_models=self._forget_models,
                )
                for peer in slice_.peers:
                    live.links.start(peer, grant=live.policy.grant(peer.id))
                addrs = ", ".join(host.listen_addrs())
                ctx.set_condition("Ready", True, "Listening", f"{host.peer_id} on {addrs}")
                await ctx.stopping.wait()
                tg.cancel_scope.cancel()
        finally:
            self._live = self._loading = None
            for state in self._peers.all():
                state.set_state("disconnected")
                self._forget_models(state.peer_id)

    async def update(self, name: str, old: P2PSlice, new: P2PSlice) -> bool:
        """Peers and trust change in place: no restart of the host, no dropped links."""
        if new.listen != old.listen:
            return False
        if self._loading is not None:
            self._loading = new
            self._policy(new)
            return True
        live = self._live
        if live is None:
            return False
        live.slice = new
        live.policy = self._policy(new)
        old_peers = {p.id: p for p in old.peers}
        new_peers = {p.id: p for p in new.peers}
        for peer_id, peer in old_peers.items():
            if new_peers.get(peer_id) != peer:
                await live.links.stop(peer_id, forget=peer_id not in new_peers)
        for peer_id, peer in new_peers.items():
            if old_peers.get(peer_id) != peer:
                live.links.start(peer, grant=live.policy.grant(peer.id))
            elif (state := self._peers.get(peer_id)) is not None:
                state.grant = live.policy.grant(peer_id)
        live.links.wake_all()  # trust or name may have changed what we offer: say hello again
        return True

    def _policy(self, slice_: P2PSlice) -> TrustPolicy:
        """The trust policy of a slice. Declared peers that it does not let use this node
        are named in one warning per start, and again when that set changes: declaring a
        peer used to be enough, and a node that silently refuses its friends is a puzzle."""
        policy = TrustPolicy(slice_.trust, slice_.peers)
        untrusted = policy.untrusted()
        if untrusted and untrusted != self._warned:
            names = ", ".join(untrusted)
            log.warning(
                "peers known but not trusted, so they may not use this node: %s "
                "(spec.trust.mode: friends). This node may still use theirs. To let one in, "
                "add `{peer: NAME}` under spec.trust.allow, or `gate peers add NAME ID --trusted`",
                names,
                extra={"peers": names},
            )
        self._warned = untrusted
        return policy

    # -- what the host, the peer table and the links call ------------------------------------

    def listen_addrs(self) -> list[str]:
        """The addresses the host listens on now (none while it is not up), for invites."""
        live = self._live
        return list(live.host.listen_addrs()) if live is not None else []

    async def probe(self, peer_id: str) -> None:
        """peers.test: connect if needed, then one hello round trip (records the RTT)."""
        live = self._live
        if live is None:
            raise GateError("the p2p component is not running", hint="see `gate status`")
        await live.links.probe(peer_id)

    def _connected(self, peer_id: str) -> None:
        live = self._live
        on_connected(peers=self._peers, links=live.links if live else None, peer_id=peer_id)

    def _disconnected(self, peer_id: str) -> None:
        live = self._live
        on_disconnected(
            peers=self._peers,
            links=live.links if live else None,
            peer_id=peer_id,
            forget_models=self._forget_models,
        )

    async def _say_hello(self, live: _Live, peer_id: str) -> None:
        await say_hello(
            host=live.host,
            peer_id=peer_id,
            offer=functools.partial(self._hello_for, live, peer_id),
            take=self._take_hello,
            peers=self._peers,
            db=self._state,
        )

    async def _on_hello_stream(self, stream: P2PStream, remote: str) -> None:
        live = self._live
        if live is None:
            return
        await answer_hello(
            stream=stream,
            remote=remote,
            offer=functools.partial(self._hello_for, live, remote),
            take=self._take_hello,
            policy=live.policy,
            pending=self._pending,
        )

    def _hello_for(self, live: _Live, peer_id: str) -> dict[str, Any]:
        return hello_for(
            peer_id=peer_id,
            policy=live.policy,
            node_name=live.slice.node_name,
            providers=self._providers,
        )

    def _take_hello(self, peer_id: str, message: dict[str, Any]) -> None:
        """A declared peer's models become routing targets only while the host runs: a
        probe's hello may still come back after it stopped."""
        state = take_hello(peers=self._peers, peer_id=peer_id, message=message)
        live = self._live
        if state is None or live is None:
            return
        register_models(
            state=state,
            providers=self._providers,
            client=live.client,
            declared=live.slice.peers,
        )

    def _forget_models(self, peer_id: str) -> None:
        forget_models(providers=self._providers, peers=self._peers, peer_id=peer_id)

    async def _on_request(self, request: P2PRequest, send: ResponseSender) -> None:
        live = self._live
        if live is None:
            return
        await admit(
            request=request,
            send=send,
            policy=live.policy,
            limiter=live.limiter,
            peers=self._peers,
            router=self._router,
            pending=self._pending,
        )
