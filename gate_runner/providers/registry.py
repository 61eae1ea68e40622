"""The live providers of this node: their backends, cached models, health, breakers and load."""

from __future__ import annotations

__all__ = ("ProviderEntry", "ProviderRegistry")

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import anyio

from gate_runner.errors import GateError
from gate_runner.providers.base import Backend, Health, ModelInfo
from gate_runner.providers.probe import ProbeResult, probe_backend
from gate_runner.routing import CircuitBreaker, LoadStats

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ProviderEntry:
    """One registered provider. Compared by identity: a restarted provider is a new entry,
    while requests already running keep the old one until they finish."""

    backend: Backend
    source: str  # "static" | "discovered"
    rank: int = 0  # order among equals: static providers in spec order, discovered after
    models: tuple[ModelInfo, ...] = ()
    models_at: float = 0.0  # monotonic time of the last successful listing
    health: Health = field(default_factory=lambda: Health("Unknown"))
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    load: LoadStats = field(default_factory=LoadStats)
    requests: int = 0
    errors: int = 0
    model_ids: frozenset[str] = frozenset()  # `models` as a set: looked up on every request
    # For a remote node's models (source "peer"): its peer id and name.
    peer_id: str | None = None
    peer_name: str | None = None

    @property
    def local(self) -> bool:
        return self.peer_id is None

    @property
    def name(self) -> str:
        return self.backend.name

    def serves(self, model: str) -> bool:
        return model in self.model_ids

    def set_models(self, models: list[ModelInfo], *, at: float) -> None:
        self.models = tuple(models)
        self.model_ids = frozenset(m.id for m in models)
        self.models_at = at

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.backend.kind,
            "source": self.source,
            "url": getattr(self.backend, "url", None),
            "health": self.health.to_dict(),
            "models": [m.id for m in self.models],
            "breaker": self.breaker.state,
            "outstanding": self.load.outstanding,
            "ewmaLatencyMs": round(self.load.ewma * 1000, 2),
            "requests": self.requests,
            "errors": self.errors,
        }


def _rank(entry: ProviderEntry) -> int:
    return entry.rank


class ProviderRegistry:
    """Owned by the node; the provider, discovery and p2p components add and remove entries,
    the router reads them and tunes their breakers. All access is from the one trio
    thread, so no locks."""

    def __init__(
        self, *, models_ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, ProviderEntry] = {}
        self._models_ttl = models_ttl
        self._breaker = (5, 5.0)  # (failure threshold, cooldown): spec.routing.circuitBreaker
        self._clock = clock

    def add(
        self,
        backend: Backend,
        *,
        source: str,
        rank: int = 1_000_000,
        peer: tuple[str, str] | None = None,
    ) -> ProviderEntry:
        """Register a backend. ``peer`` is (peer id, name) for a remote node's models."""
        if backend.name in self._entries:
            raise GateError(f"a provider named {backend.name!r} is already registered")
        threshold, cooldown = self._breaker
        entry = ProviderEntry(
            backend=backend,
            source=source,
            rank=rank,
            breaker=CircuitBreaker(threshold=threshold, cooldown=cooldown),
        )
        if peer is not None:
            entry.peer_id, entry.peer_name = peer
        self._entries[backend.name] = entry
        return entry

    def set_breaker(self, *, threshold: int, cooldown: float) -> None:
        """Breaker settings for every entry, present and future (the spec may change them)."""
        self._breaker = (threshold, cooldown)
        for entry in self._entries.values():
            entry.breaker.tune(threshold=threshold, cooldown=cooldown)

    def remove(self, name: str) -> ProviderEntry | None:
        return self._entries.pop(name, None)

    def get(self, name: str) -> ProviderEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[ProviderEntry]:
        return list(self._entries.values())

    def serving(self, model: str) -> list[ProviderEntry]:
        """Entries whose cached model list has ``model``, by rank (components start
        concurrently, so registration order means nothing)."""
        found = [e for e in self._entries.values() if model in e.model_ids]
        if len(found) > 1:
            found.sort(key=_rank)
        return found

    async def refresh(self, entry: ProviderEntry, *, within: float = 5.0) -> None:
        """Check health and re-list models (providers/probe.py)."""
        self.observe(entry, await probe_backend(entry.backend, within=within))

    def observe(self, entry: ProviderEntry, probe: ProbeResult) -> None:
        """Take in a probe of ``entry``'s backend. A failed listing keeps the old models (a
        blip should not make them vanish); the probe's health says it failed."""
        entry.health = probe.health
        if probe.models is not None:
            entry.set_models(list(probe.models), at=self._clock())

    async def refresh_stale(self, *, within: float = 2.0) -> None:
        """Re-list models of the providers whose cache is older than the TTL."""
        now = self._clock()
        stale = [e for e in self._entries.values() if now - e.models_at > self._models_ttl]
        if not stale:
            return
        async with anyio.create_task_group() as tg:
            for entry in stale:
                tg.start_soon(partial(self.refresh, entry, within=within))
