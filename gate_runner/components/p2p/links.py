"""Links to the spec's declared peers: each kept connected (dialed with backoff, a hello as
its keepalive, dropped when its hellos keep failing), probed on request, woken on a
connect or disconnect."""

from __future__ import annotations

__all__ = ("Links", "on_connected", "on_disconnected")

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from gate_runner.components.p2p.hello import HELLO_TIMEOUT
from gate_runner.errors import GateError

if TYPE_CHECKING:
    from gate_runner.p2p import P2PHost
    from gate_runner.peers import PeerTable
    from gate_runner.spec import PeerSpec
    from gate_runner.trust import Grant

# The component's one logger, under the name it had before it became a package.
log = logging.getLogger("gate_runner.components.p2p")

HELLO_INTERVAL = 5.0  # also the keepalive: a link whose hellos fail is dropped and redialed
HELLO_FAILURES_BEFORE_DROP = 3


class Links:
    """The running links of one host: a task per declared peer in the host's task group,
    and the event that has it say hello (or redial) now."""

    def __init__(
        self,
        *,
        host: P2PHost,
        peers: PeerTable,
        task_group: TaskGroup,
        say_hello: Callable[[str], Awaitable[None]],
        forget_models: Callable[[str], None],
    ) -> None:
        self._host = host
        self._peers = peers
        self._task_group = task_group
        self._say_hello = say_hello
        self._forget_models = forget_models
        self._scopes: dict[str, anyio.CancelScope] = {}  # peer id -> its link
        self._wake: dict[str, anyio.Event] = {}  # say hello now

    def start(self, peer: PeerSpec, *, grant: Grant | None) -> None:
        state = self._peers.upsert(peer.id, name=peer.name, addrs=peer.addrs)
        state.grant = grant
        scope = anyio.CancelScope()
        self._scopes[peer.id] = scope
        self._wake[peer.id] = anyio.Event()
        self._task_group.start_soon(self._keep, peer, scope)

    async def stop(self, peer_id: str, *, forget: bool) -> None:
        scope = self._scopes.pop(peer_id, None)
        self._wake.pop(peer_id, None)
        if scope is not None:
            scope.cancel()
        self._forget_models(peer_id)
        if forget:
            self._peers.remove(peer_id)
            if self._host.is_connected(peer_id):
                await self._host.disconnect(peer_id)

    def wake(self, peer_id: str) -> None:
        if peer_id in self._wake:
            self._wake[peer_id].set()

    def wake_all(self) -> None:
        for event in self._wake.values():
            event.set()

    async def probe(self, peer_id: str) -> None:
        """peers.test: connect if needed, then one hello round trip (records the RTT)."""
        state = self._peers.get(peer_id)
        if not self._host.is_connected(peer_id):
            if state is None or not state.addrs:
                raise GateError(
                    "not connected, and the spec gives no address to dial",
                    hint="add addrs to the peer, or wait for it to dial in",
                )
            await self._host.connect(peer_id, state.addrs)
        with anyio.fail_after(HELLO_TIMEOUT):
            await self._say_hello(peer_id)

    async def _keep(self, peer: PeerSpec, scope: anyio.CancelScope) -> None:
        """Keep one peer connected: dial with backoff, say hello every HELLO_INTERVAL (the
        keepalive and the model list), and drop a link whose hellos keep failing."""
        host = self._host
        state = self._peers.upsert(peer.id, name=peer.name, addrs=peer.addrs)
        backoff = 1.0
        failures = 0
        # A peer that is down is redialed forever: its failure is news once (WARNING), and
        # again only when it changes; the retries in between log at DEBUG.
        dial_error: str | None = None
        with scope:
            while True:
                if not host.is_connected(peer.id):
                    if not peer.addrs:
                        await self._pause(peer.id, 1.0)  # it dials in
                        continue
                    state.set_state("dialing")
                    try:
                        await host.connect(peer.id, peer.addrs)
                    except GateError as e:
                        error = str(e)
                        level = logging.DEBUG if error == dial_error else logging.WARNING
                        log.log(
                            level,
                            "cannot reach peer %s (retrying in %g s): %s",
                            peer.name,
                            backoff,
                            error,
                            extra={"peer": peer.name},
                        )
                        dial_error = error
                        state.set_state("disconnected", error=error)
                        await self._pause(peer.id, backoff)
                        backoff = min(30.0, backoff * 2)
                        continue
                    backoff = 1.0
                dial_error = None  # connected (by us or by its dial): the next failure is news
                # A peer that dialed in before it was declared (approved from the pending
                # requests) connected while nobody tracked it: it is connected now.
                state.set_state("connected")
                try:
                    with anyio.fail_after(HELLO_TIMEOUT):
                        await self._say_hello(peer.id)
                    failures = 0
                except (GateError, TimeoutError, OSError) as e:
                    failures += 1
                    state.last_error = f"hello failed: {e}"
                    if failures >= HELLO_FAILURES_BEFORE_DROP:
                        log.warning("link to %s is dead; redialing", peer.name)
                        await host.disconnect(peer.id)
                        failures = 0
                await self._pause(peer.id, HELLO_INTERVAL)

    async def _pause(self, peer_id: str, seconds: float) -> None:
        event = self._wake.get(peer_id)
        if event is None:
            await anyio.sleep(seconds)
            return
        with anyio.move_on_after(seconds):
            await event.wait()
        self._wake[peer_id] = anyio.Event()


def on_connected(*, peers: PeerTable, links: Links | None, peer_id: str) -> None:
    """The host connected to a peer (either side dialed): its link says hello now."""
    state = peers.get(peer_id)
    if state is not None:
        state.set_state("connected")
        state.connection = "direct"
    if links is not None:
        links.wake(peer_id)
    log.info("peer connected", extra={"peer": state.name if state else peer_id})


def on_disconnected(
    *,
    peers: PeerTable,
    links: Links | None,
    peer_id: str,
    forget_models: Callable[[str], None],
) -> None:
    """The host lost a peer: stop routing to it, and have its link redial now."""
    state = peers.get(peer_id)
    if state is not None:
        state.set_state("disconnected")
        state.connection = None
    forget_models(peer_id)
    if links is not None:
        links.wake(peer_id)  # redial now, not at the next hello
    log.info("peer disconnected", extra={"peer": state.name if state else peer_id})
