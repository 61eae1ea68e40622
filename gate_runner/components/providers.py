"""The `provider` component: one instance per static provider, registered while it runs."""

from __future__ import annotations

__all__ = ("ProviderComponent", "ProviderSlice", "report_health")

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from anyio.abc import TaskStatus
from apscheduler import ConflictPolicy
from apscheduler.triggers.interval import IntervalTrigger

from gate_runner.components.base import RunContext
from gate_runner.providers.base import Backend
from gate_runner.providers.factory import build_backend
from gate_runner.providers.registry import ProviderEntry, ProviderRegistry
from gate_runner.providers.scoped import scoped
from gate_runner.spec import NodeSpec, ProviderSpec

if TYPE_CHECKING:
    from apscheduler import AsyncScheduler

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 15.0


@dataclass(frozen=True, slots=True)
class ProviderSlice:
    spec: ProviderSpec
    max_response_body: int
    rank: int  # position in spec.providers.static: the order among equally good targets


def _backend(slice_: ProviderSlice) -> Backend:
    """The provider's backend, showing only its allowed models under its prefix: the one
    place these apply, since everything else reads the models the registry holds."""
    backend = build_backend(slice_.spec, max_response_body=slice_.max_response_body)
    return scoped(backend, slice_.spec)


def report_health(ctx: RunContext, entry: ProviderEntry) -> None:
    health = entry.health
    models = len(entry.models)
    detail = f"{models} model{'s' if models != 1 else ''}"
    if health.latency_ms is not None:
        detail += f", {health.latency_ms:.1f} ms"
    if health.error:
        detail += f": {health.error}"
    ctx.set_condition("Ready", True, health.state, detail)
    ctx.set_condition("Degraded", health.state != "Healthy", health.state, health.error or "")


class ProviderComponent:
    kind: ClassVar[str] = "provider"

    def __init__(self, *, providers: ProviderRegistry, scheduler: AsyncScheduler) -> None:
        self._providers = providers
        self._scheduler = scheduler
        self._ctx: dict[str, RunContext] = {}

    def desired(self, spec: NodeSpec) -> Mapping[str, ProviderSlice]:
        return {
            p.name: ProviderSlice(
                spec=p, max_response_body=spec.limits.max_response_body, rank=rank
            )
            for rank, p in enumerate(spec.providers.static)
        }

    async def run(
        self, name: str, slice_: ProviderSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        registry = self._providers
        scheduler = self._scheduler
        backend = _backend(slice_)
        try:
            await backend.start()
        except BaseException:
            await backend.aclose()
            raise
        entry = registry.add(backend, source="static", rank=slice_.rank)
        task_id = f"provider-health:{name}"
        try:
            await registry.refresh(entry)
            report_health(ctx, entry)
            self._ctx[name] = ctx
            await scheduler.configure_task(task_id, func=lambda: self._check(name))
            await scheduler.add_schedule(
                task_id,
                IntervalTrigger(seconds=HEALTH_INTERVAL),
                id=task_id,
                conflict_policy=ConflictPolicy.replace,
            )
            task_status.started()
            await ctx.stopping.wait()
        finally:
            self._ctx.pop(name, None)
            await scheduler.remove_schedule(task_id)
            if registry.get(name) is entry:
                registry.remove(name)
            # Requests already running hold the entry and finish on their connections.
            await entry.backend.aclose()

    async def _check(self, name: str) -> None:
        entry = self._providers.get(name)
        ctx = self._ctx.get(name)
        if entry is None or ctx is None:
            return
        before = entry.health.state
        await self._providers.refresh(entry)
        if entry.health.state != before:
            log.info(
                "provider %s is %s",
                name,
                entry.health.state,
                extra={"provider": name, "error": entry.health.error},
            )
        report_health(ctx, entry)

    async def update(self, name: str, old: ProviderSlice, new: ProviderSlice) -> bool:
        """Swap the backend under the registered entry: new requests use the new one at once,
        requests already running finish on the old one, and the model never disappears."""
        entry = self._providers.get(name)
        ctx = self._ctx.get(name)
        if entry is None or ctx is None:
            return False
        entry.rank = new.rank
        if (old.spec, old.max_response_body) == (new.spec, new.max_response_body):
            return True
        backend = _backend(new)
        try:
            await backend.start()
        except BaseException:
            await backend.aclose()
            raise
        previous = entry.backend
        entry.backend = backend
        await self._providers.refresh(entry)
        report_health(ctx, entry)
        await previous.aclose()
        return True
