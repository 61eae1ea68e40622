"""The hello between two nodes: what we tell a peer, what we take from its hello, and its
models registered as routing targets (or forgotten while it is away). A hello from a peer
not in the spec is noted as a pending request."""

from __future__ import annotations

__all__ = (
    "HELLO_PROTOCOL",
    "HELLO_TIMEOUT",
    "answer_hello",
    "forget_models",
    "hello_for",
    "register_models",
    "say_hello",
    "take_hello",
)

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gate_runner import __version__
from gate_runner.providers.base import Health, ModelInfo
from gate_runner.providers.remote import RemoteBackend
from gate_runner.state.peerbook import PeerBook

if TYPE_CHECKING:
    from gate_runner.p2p import P2PHost, P2PHttpClient, P2PStream
    from gate_runner.peers import PeerState, PeerTable
    from gate_runner.providers.registry import ProviderRegistry
    from gate_runner.spec import PeerSpec
    from gate_runner.state import StateDB
    from gate_runner.state.pending import PendingPeers
    from gate_runner.trust import TrustPolicy

# The component's one logger, under the name it had before it became a package.
log = logging.getLogger("gate_runner.components.p2p")

HELLO_PROTOCOL = "/gate/hello/1"
HELLO_VERSION = 1  # the protocol's version, all a peer that may not use us is told
HELLO_TIMEOUT = 5.0
MAX_HELLO = 256 * 1024

Hello = dict[str, Any]


def hello_for(
    *, peer_id: str, policy: TrustPolicy, node_name: str, providers: ProviderRegistry
) -> Hello:
    """A peer that may use this node learns its name, Gate version, models and load. Any
    other peer only learns the protocol version: it has no use for the rest, which would
    tell it who runs what, which version to attack, and when the node is busy.

    That includes a peer we know but do not trust. We declared it to use its engines,
    not to be seen by it; it already knows who we are if it declared us, and a request it
    sends anyway gets a 403 that names the fix, which is all it needs."""
    if policy.grant(peer_id) is None:
        return {"protocol": HELLO_VERSION, "models": []}
    local = sorted({m.id for e in providers.entries() if e.local for m in e.models})
    return {
        "protocol": HELLO_VERSION,
        "version": __version__,
        "name": node_name,
        "models": policy.offered(peer_id, local),
        "load": sum(e.load.outstanding for e in providers.entries() if e.local),
    }


async def say_hello(
    *,
    host: P2PHost,
    peer_id: str,
    offer: Callable[[], Hello],
    take: Callable[[str, Hello], None],
    peers: PeerTable,
    db: StateDB,
) -> None:
    """One hello round trip: send ``offer()`` (made once the stream is open), hand the
    reply to ``take``, record the round trip's time, and remember a declared peer."""
    from gate_runner.p2p import read_json, write_json

    began = time.perf_counter()
    stream = await host.open_stream(peer_id, HELLO_PROTOCOL)
    try:
        await write_json(stream, offer())
        reply = await read_json(stream, max_size=MAX_HELLO)
    finally:
        await stream.aclose()
    state = peers.get(peer_id)
    if state is not None:
        state.last_rtt_ms = (time.perf_counter() - began) * 1000
    take(peer_id, reply)
    if state is not None and state.declared:
        await PeerBook(db).seen(
            peer_id=peer_id,
            name=state.name,
            remote_name=state.remote_name,
            version=state.version,
            addrs=state.addrs,
            models=state.models,
            rtt_ms=state.last_rtt_ms,
        )


async def answer_hello(
    *,
    stream: P2PStream,
    remote: str,
    offer: Callable[[], Hello],
    take: Callable[[str, Hello], None],
    policy: TrustPolicy | None = None,
    pending: PendingPeers | None = None,
) -> None:
    """A peer's hello: hand it to ``take``, then answer with ``offer()``. A peer that
    ``policy`` does not name (not in spec.peers) is noted in ``pending``, after the answer
    so that it does not wait on the write; a declared peer's hello never touches it."""
    from gate_runner.p2p import read_json, write_json

    message = await read_json(stream, max_size=MAX_HELLO)
    take(remote, message)
    await write_json(stream, offer())
    if pending is not None and policy is not None and policy.name_of(remote) is None:
        announced = message.get("name")
        await pending.record(
            peer_id=remote,
            name=announced if isinstance(announced, str) else None,
            # The stream does not expose its connection's address yet (P2PStream wraps
            # libp2p's NetStream, whose get_remote_address() has it).
            address=None,
        )


def take_hello(*, peers: PeerTable, peer_id: str, message: Hello) -> PeerState | None:
    """Record what a peer offers us, and return its state when its models are to be
    registered. Only peers in our spec become routing targets: a stranger may use this
    node in public mode, but we never send it our requests."""
    state = peers.get(peer_id)
    if state is None or not state.declared:
        return None
    models = message.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        log.warning("peer %s sent a hello without a model list", state.name)
        return None
    state.models = tuple(models[:1000])
    state.models_stale = False
    state.remote_name = str(message.get("name") or "")[:128] or None
    state.version = str(message.get("version") or "")[:32] or None
    load = message.get("load")
    state.load = load if isinstance(load, int) else 0
    return state


def register_models(
    *,
    state: PeerState,
    providers: ProviderRegistry,
    client: P2PHttpClient,
    declared: tuple[PeerSpec, ...],
) -> None:
    """Route to a peer's models through its one provider entry, ``@name``, ranked by the
    peer's place in the spec (after the static providers)."""
    peer_id, name = state.peer_id, state.name
    entry = providers.get(f"@{name}")
    if entry is None:
        rank = 1_000 + next((i for i, p in enumerate(declared) if p.id == peer_id), 999)
        remote = RemoteBackend(peer_id=peer_id, peer_name=name, client=client, state=state)
        entry = providers.add(remote, source="peer", rank=rank, peer=(peer_id, name))
    owner = state.remote_name or name
    infos = [ModelInfo(id=m, created=0, owned_by=owner) for m in state.models]
    if isinstance(entry.backend, RemoteBackend):
        entry.backend.models = infos
    entry.set_models(infos, at=float("inf"))  # pushed by hellos, never stale
    entry.health = Health("Healthy")


def forget_models(*, providers: ProviderRegistry, peers: PeerTable, peer_id: str) -> None:
    """Stop routing to a peer. Its state keeps the models, marked stale, until its
    next hello."""
    for entry in providers.entries():
        if entry.peer_id == peer_id:
            providers.remove(entry.name)
    state = peers.get(peer_id)
    if state is not None and state.models:
        state.models_stale = True
