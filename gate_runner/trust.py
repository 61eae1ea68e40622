"""Who may use this node: the trust mode, per-peer model allowlists and rate limits.

Every inbound P2P request is checked here against the *authenticated* peer id, never a
name or id the request claims. Pure logic plus a clock, so it is tested without a network.
"""

from __future__ import annotations

__all__ = ("Decision", "RateLimiter", "TrustPolicy")

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gate_runner.spec import PeerSpec, RateLimit, TrustSpec


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int = 200  # 403 forbidden, 429 rate limited
    reason: str = ""
    retry_after: float | None = None


_OK = Decision(True)


class TrustPolicy:
    """The trust section of one spec generation, indexed by peer id."""

    def __init__(self, trust: TrustSpec, peers: Iterable[PeerSpec]) -> None:
        self.mode = trust.mode
        self._names = {p.id: p.name for p in peers}
        rules = {r.peer: r for r in trust.allow}
        self._models = {
            pid: rules[name].models for pid, name in self._names.items() if name in rules
        }
        self.limits: dict[str, RateLimit] = {}
        for pid, name in self._names.items():
            limit = rules[name].rate_limit if name in rules else None
            if limit is not None:
                self.limits[pid] = limit

    def name_of(self, peer_id: str) -> str | None:
        return self._names.get(peer_id)

    def admit(self, peer_id: str) -> Decision:
        """May this peer use the node at all?"""
        if self.mode == "private":
            return Decision(False, 403, "this node is private (spec.trust.mode: private)")
        if self.mode == "friends" and peer_id not in self._names:
            return Decision(False, 403, "not a friend of this node (not in its spec.peers)")
        return _OK

    def may_use(self, peer_id: str, model: str) -> Decision:
        decision = self.admit(peer_id)
        if not decision.allowed:
            return decision
        patterns = self._models.get(peer_id)
        if patterns is None or any(fnmatch.fnmatchcase(model, p) for p in patterns):
            return _OK
        return Decision(False, 403, f"model {model!r} is not shared with this peer")

    def offered(self, peer_id: str, models: Iterable[str]) -> list[str]:
        """The models to advertise to a peer: only those it may use."""
        if not self.admit(peer_id).allowed:
            return []
        return [m for m in models if self.may_use(peer_id, m).allowed]


class RateLimiter:
    """Per-peer limits: a token bucket for requests per minute and a cap on concurrent
    requests. ``acquire`` says whether a request may start; ``release`` ends it."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # peer -> (tokens, at)
        self._running: dict[str, int] = {}

    def acquire(self, peer_id: str, limit: RateLimit | None) -> Decision:
        if limit is None:
            self._running[peer_id] = self._running.get(peer_id, 0) + 1
            return _OK
        if limit.concurrent is not None and self._running.get(peer_id, 0) >= limit.concurrent:
            return Decision(
                False, 429, f"over {limit.concurrent} concurrent requests", retry_after=1.0
            )
        if limit.requests_per_minute is not None:
            rate = limit.requests_per_minute / 60.0
            capacity = float(limit.requests_per_minute)
            now = self._clock()
            tokens, at = self._tokens.get(peer_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._tokens[peer_id] = (tokens, now)
                return Decision(
                    False,
                    429,
                    f"over {limit.requests_per_minute} requests a minute",
                    retry_after=(1.0 - tokens) / rate,
                )
            self._tokens[peer_id] = (tokens - 1.0, now)
        self._running[peer_id] = self._running.get(peer_id, 0) + 1
        return _OK

    def release(self, peer_id: str) -> None:
        left = self._running.get(peer_id, 0) - 1
        if left > 0:
            self._running[peer_id] = left
        else:
            self._running.pop(peer_id, None)
