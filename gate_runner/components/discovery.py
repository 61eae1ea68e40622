"""The `discovery` component: probes well-known engine ports and registers what answers,
through the backend a static provider would have and the one prober (providers/probe.py)."""

from __future__ import annotations

__all__ = ("DiscoveryComponent", "DiscoverySlice")

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import anyio
from anyio.abc import TaskStatus
from apscheduler import ConflictPolicy
from apscheduler.triggers.interval import IntervalTrigger

from gate_runner.components.base import RunContext
from gate_runner.providers.base import Backend
from gate_runner.providers.factory import build_backend
from gate_runner.providers.probe import PROBE_TIMEOUT, probe_backend
from gate_runner.spec import DiscoveryTarget, NodeSpec, ProviderSpec

if TYPE_CHECKING:
    from apscheduler import AsyncScheduler

    from gate_runner.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

# A discovered engine is dropped after this many failed probes in a row, so that one
# slow answer while it is busy does not make its models vanish.
MISSES_BEFORE_DROP = 2


@dataclass(frozen=True, slots=True)
class DiscoverySlice:
    interval: float
    targets: tuple[DiscoveryTarget, ...]
    # Static providers win: a target at one of their URLs is not probed, and a found engine
    # whose name a static provider already has gets a "-discovered" suffix.
    static_urls: frozenset[str]
    static_names: frozenset[str]
    # spec.limits.maxResponseBody, which a found engine gets as a static provider does.
    max_response_body: int


def _norm(url: str) -> str:
    return url.rstrip("/").lower()


class DiscoveryComponent:
    kind: ClassVar[str] = "discovery"

    def __init__(self, *, providers: ProviderRegistry, scheduler: AsyncScheduler) -> None:
        self._providers = providers
        self._scheduler = scheduler
        self._slice: DiscoverySlice | None = None
        self._ctx: RunContext | None = None
        self._found: dict[str, str] = {}  # target url -> registered provider name
        self._misses: dict[str, int] = {}

    def desired(self, spec: NodeSpec) -> Mapping[str, DiscoverySlice]:
        discovery = spec.providers.discovery
        if not discovery.enabled:
            return {}
        static = spec.providers.static
        return {
            "discovery": DiscoverySlice(
                interval=discovery.interval,
                targets=discovery.targets,
                static_urls=frozenset(_norm(p.url) for p in static if p.url),
                static_names=frozenset(p.name for p in static),
                max_response_body=spec.limits.max_response_body,
            )
        }

    async def run(
        self, name: str, slice_: DiscoverySlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        scheduler = self._scheduler
        self._slice, self._ctx = slice_, ctx
        task_id = "discovery-probe"
        try:
            await self.probe()
            task_status.started()
            await scheduler.configure_task(task_id, func=self.probe)
            await self._schedule(slice_.interval)
            await ctx.stopping.wait()
        finally:
            await scheduler.remove_schedule(task_id)
            await self._drop_all()
            self._slice = self._ctx = None

    async def _schedule(self, interval: float) -> None:
        # The first scheduled round comes one interval after the probe made just before:
        # an interval trigger would otherwise fire at once, probing twice in a row.
        first = datetime.now(UTC) + timedelta(seconds=interval)
        await self._scheduler.add_schedule(
            "discovery-probe",
            IntervalTrigger(seconds=interval, start_time=first),
            id="discovery-probe",
            conflict_policy=ConflictPolicy.replace,
        )

    async def update(self, name: str, old: DiscoverySlice, new: DiscoverySlice) -> bool:
        if self._ctx is None:
            return False
        self._slice = new
        if new.interval != old.interval:
            await self._schedule(new.interval)
        # Forget engines that are no longer targets, or that a static provider now owns,
        # those whose target changed (kind, name or timeout), and all of them when the
        # response limit changed (their backends hold the old one): the next probe finds
        # them anew.
        wanted = {_norm(t.url): t for t in new.targets if _norm(t.url) not in new.static_urls}
        before = {_norm(t.url): t for t in old.targets}
        same_limit = new.max_response_body == old.max_response_body
        for url in [
            u
            for u in self._found
            if u not in wanted or wanted[u] != before.get(u) or not same_limit
        ]:
            await self._drop(url)
        await self.probe()
        return True

    async def probe(self) -> None:
        """One round: probe every target concurrently, register new engines, drop gone ones."""
        slice_, ctx = self._slice, self._ctx
        if slice_ is None or ctx is None:
            return
        async with anyio.create_task_group() as tg:
            for target in slice_.targets:
                if _norm(target.url) not in slice_.static_urls:
                    tg.start_soon(self._probe_one, target, slice_)
        self._report(slice_, ctx)

    async def _probe_one(self, target: DiscoveryTarget, slice_: DiscoverySlice) -> None:
        url = _norm(target.url)
        registry = self._providers
        known = self._found.get(url)
        entry = registry.get(known) if known else None
        if entry is not None:
            await registry.refresh(entry, within=PROBE_TIMEOUT)
            if entry.health.state == "Unhealthy":
                self._misses[url] = self._misses.get(url, 0) + 1
                if self._misses[url] >= MISSES_BEFORE_DROP:
                    log.info("discovered provider %s at %s is gone", known, target.url)
                    await self._drop(url)
            else:
                self._misses[url] = 0
            return
        backend = self._backend(target, slice_)
        probe = await probe_backend(backend, within=PROBE_TIMEOUT)
        if not probe.found:
            await backend.aclose()
            return
        entry = registry.add(backend, source="discovered")
        registry.observe(entry, probe)
        self._found[url] = backend.name
        self._misses[url] = 0
        log.info(
            "discovered %s at %s with %d models",
            backend.name,
            target.url,
            len(entry.models),
            extra={"provider": backend.name},
        )

    def _backend(self, target: DiscoveryTarget, slice_: DiscoverySlice) -> Backend:
        name = target.name
        taken = slice_.static_names | set(self._found.values())
        if name in taken or self._providers.get(name) is not None:
            name = f"{target.name}-discovered"
        # Built as a static provider is: the target's timeout is already resolved (its own,
        # then discovery.timeout, then the kind's default) by the spec builder.
        spec = ProviderSpec(name=name, kind=target.kind, url=target.url, timeout=target.timeout)
        return build_backend(spec, max_response_body=slice_.max_response_body)

    async def _drop(self, url: str) -> None:
        name = self._found.pop(url, None)
        self._misses.pop(url, None)
        if name is None:
            return
        entry = self._providers.remove(name)
        if entry is not None:
            await entry.backend.aclose()

    async def _drop_all(self) -> None:
        for url in list(self._found):
            await self._drop(url)

    def _report(self, slice_: DiscoverySlice, ctx: RunContext) -> None:
        if self._found:
            found = ", ".join(f"{n} ({u})" for u, n in sorted(self._found.items()))
            ctx.set_condition("Ready", True, "Found", found)
            return
        probed = ", ".join(t.url for t in slice_.targets if _norm(t.url) not in slice_.static_urls)
        ctx.set_condition(
            "Ready",
            True,
            "NoneFound",
            f"no engine answered at {probed or 'any target'}; start Ollama or LM Studio, "
            "or add one under spec.providers.static",
        )
