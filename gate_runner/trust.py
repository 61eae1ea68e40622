"""Who may use this node: the trust mode, per-peer model allowlists and rate limits.

Every inbound P2P request is checked here against the *authenticated* peer id, never a
name or id the request claims. Pure logic plus a clock, so it is tested without a network.
"""

from __future__ import annotations

__all__ = ("Decision", "Grant", "PeerAccess", "RateLimiter", "TrustPolicy")

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


@dataclass(frozen=True, slots=True)
class Grant:
    """What one peer may use of this node: model globs (``("*",)`` for all) and its limits."""

    models: tuple[str, ...] = ("*",)
    rate_limit: RateLimit | None = None


_ALL = Grant()


class TrustPolicy:
    """The trust section of one spec generation, indexed by peer id.

    Knowing a peer (``spec.peers``) and trusting it (a ``trust.allow`` rule) are separate
    choices: a node adds a friend to use the friend's engines, and that alone must not open
    its own. So in ``friends`` mode only peers with a rule may use this node; in ``public``
    mode anyone may, and a rule only narrows a named peer's models and sets its limits.
    """

    def __init__(self, trust: TrustSpec, peers: Iterable[PeerSpec]) -> None:
        self.mode = trust.mode
        self._names = {p.id: p.name for p in peers}
        ids = {name: pid for pid, name in self._names.items()}
        # The spec's validation makes every rule name a declared peer; one that does not
        # (a spec built in code) grants nothing, since it names no one we can authenticate.
        self._grants = {
            ids[r.peer]: Grant(r.models, r.rate_limit) for r in trust.allow if r.peer in ids
        }
        self.limits: dict[str, RateLimit] = {
            pid: g.rate_limit for pid, g in self._grants.items() if g.rate_limit is not None
        }

    def name_of(self, peer_id: str) -> str | None:
        return self._names.get(peer_id)

    def grant(self, peer_id: str) -> Grant | None:
        """What this peer may use of this node; None when it may use nothing."""
        if not self.admit(peer_id).allowed:
            return None
        return self._grants.get(peer_id, _ALL)

    def untrusted(self) -> tuple[str, ...]:
        """Names of declared peers that may not use this node for want of a rule (friends
        mode): worth a warning, since declaring a peer used to be enough."""
        if self.mode != "friends":
            return ()
        return tuple(sorted(n for pid, n in self._names.items() if pid not in self._grants))

    def admit(self, peer_id: str) -> Decision:
        """May this peer use the node at all?"""
        if self.mode == "private":
            return Decision(False, 403, "this node is private (spec.trust.mode: private)")
        if self.mode == "public" or peer_id in self._grants:
            return _OK
        name = self._names.get(peer_id)
        if name is None:
            return Decision(
                False,
                403,
                f"peer {peer_id} is not a friend of this node (not in its spec.peers): "
                f"its operator can let it in with `gate peers add NAME {peer_id} --trusted`",
            )
        return Decision(
            False,
            403,
            f"peer {name} is known but not trusted: add `{{peer: {name}}}` under "
            f"spec.trust.allow on this node, or re-add it with `gate peers rm {name}` and "
            f"`gate peers add {name} {peer_id} --trusted`",
        )

    def may_use(self, peer_id: str, model: str) -> Decision:
        grant = self.grant(peer_id)
        if grant is None:
            return self.admit(peer_id)
        if any(fnmatch.fnmatchcase(model, p) for p in grant.models):
            return _OK
        name = self._names.get(peer_id, peer_id)
        return Decision(
            False,
            403,
            f"model {model!r} is not shared with peer {name} "
            f"(its spec.trust.allow rule lists {', '.join(grant.models)})",
        )

    def offered(self, peer_id: str, models: Iterable[str]) -> list[str]:
        """The models to advertise to a peer: only those it may use."""
        if self.grant(peer_id) is None:
            return []
        return [m for m in models if self.may_use(peer_id, m).allowed]


@dataclass(frozen=True, slots=True)
class PeerAccess:
    """A request that came from another node: who sent it (its Noise-authenticated id, never
    a name it claims) and the policy that says what it may use. The router serves such a
    request with this node's own engines only, and only a model the policy grants."""

    peer_id: str
    name: str
    policy: TrustPolicy

    def may_use(self, model: str) -> Decision:
        return self.policy.may_use(self.peer_id, model)


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
