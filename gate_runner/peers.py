"""What this node knows about its peers right now: link state, RTT, models offered (both
ways), traffic."""

from __future__ import annotations

__all__ = ("PeerState", "PeerTable")

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gate_runner.trust import Grant

if TYPE_CHECKING:
    from gate_runner.events import EventBus


@dataclass(slots=True)
class PeerState:
    """One peer, declared in the spec or (in public mode) met when it dialed in."""

    peer_id: str
    name: str  # the spec's name for it; the peer id when it is not in the spec
    addrs: tuple[str, ...] = ()
    declared: bool = True
    state: str = "disconnected"  # disconnected | dialing | connected
    connection: str | None = None  # direct | relayed
    last_rtt_ms: float | None = None
    models: tuple[str, ...] = ()  # what it offers to us (its hello)
    # The models are its last offer, not routable now: kept while it is away, so that the
    # router can answer "peer offline" (503) for them rather than "no such model" (404).
    models_stale: bool = False
    grant: Grant | None = None  # what it may use of ours; None: nothing (not trusted)
    remote_name: str | None = None  # the name it gives itself
    version: str | None = None
    load: int = 0  # its outstanding requests, from its hello
    bytes_in: int = 0
    bytes_out: int = 0
    requests_served: int = 0  # its requests we answered
    requests_sent: int = 0  # our requests it answered
    last_error: str | None = None
    since: float = field(default_factory=time.time)  # of the current state
    # Told of every state change (old state first): the table's peer.* events.
    on_change: Callable[[PeerState, str], None] | None = field(
        default=None, repr=False, compare=False
    )

    def set_state(self, state: str, *, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state != self.state:
            old, self.state = self.state, state
            self.since = time.time()
            if self.on_change is not None:
                self.on_change(self, old)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "peerId": self.peer_id,
            "addrs": list(self.addrs),
            "declared": self.declared,
            "state": self.state,
            "connection": self.connection,
            "lastRttMs": None if self.last_rtt_ms is None else round(self.last_rtt_ms, 2),
            "models": list(self.models),
            "modelsStale": self.models_stale,
            "trusted": self.grant is not None,
            "sharedModels": None if self.grant is None else list(self.grant.models),
            "rateLimit": self._rate_limit(),
            "remoteName": self.remote_name,
            "version": self.version,
            "load": self.load,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "requestsServed": self.requests_served,
            "requestsSent": self.requests_sent,
            "lastError": self.last_error,
            "since": self.since,
        }

    def _rate_limit(self) -> dict[str, int | None] | None:
        limit = self.grant.rate_limit if self.grant is not None else None
        if limit is None:
            return None
        return {"requestsPerMinute": limit.requests_per_minute, "concurrent": limit.concurrent}


class PeerTable:
    """Owned by the node; the p2p component writes it, the API and control plane read it."""

    def __init__(self, *, events: EventBus | None = None) -> None:
        self._by_id: dict[str, PeerState] = {}
        self._events = events

    def get(self, peer_id: str) -> PeerState | None:
        return self._by_id.get(peer_id)

    def by_name(self, name: str) -> PeerState | None:
        return next((p for p in self._by_id.values() if p.name == name), None)

    def find(self, ref: str) -> PeerState | None:
        """A peer by name, peer id, hex id or DNS label (X-Target-Node accepts them all)."""
        peer = self.by_name(ref) or self.get(ref)
        if peer is not None:
            return peer
        from gate_runner.identity import NodeId

        try:
            return self.get(NodeId.parse(ref).peer_id)
        except ValueError:
            return None

    def upsert(
        self, peer_id: str, *, name: str, addrs: tuple[str, ...] = (), declared: bool = True
    ) -> PeerState:
        peer = self._by_id.get(peer_id)
        if peer is None:
            peer = self._by_id[peer_id] = PeerState(peer_id, name, addrs, declared)
            peer.on_change = self._state_changed
        else:
            peer.name, peer.addrs, peer.declared = name, addrs, declared
        return peer

    def _state_changed(self, peer: PeerState, old: str) -> None:
        if self._events is None:
            return
        if peer.state == "connected":
            self._events.publish("peer.connected", {"peerId": peer.peer_id, "name": peer.name})
        elif old == "connected":
            self._events.publish(
                "peer.disconnected",
                {"peerId": peer.peer_id, "name": peer.name, "error": peer.last_error},
            )

    def remove(self, peer_id: str) -> PeerState | None:
        return self._by_id.pop(peer_id, None)

    def all(self) -> list[PeerState]:
        return sorted(self._by_id.values(), key=lambda p: (not p.declared, p.name))
