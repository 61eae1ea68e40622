"""The process's apscheduler, with its memory store made safe for removing a schedule while
it fires (the provider and discovery components do, when they stop)."""

from __future__ import annotations

__all__ = ("new_scheduler",)

from collections.abc import Sequence

from apscheduler import AsyncScheduler
from apscheduler.datastores.memory import MemoryDataStore


class _MemoryStore(MemoryDataStore):
    """apscheduler 4.0.0a6 releases a fired schedule by its id without checking that it is
    still there: a schedule removed meanwhile raised KeyError inside the scheduler, which then
    stopped (and `gate up` with it). A removed schedule's result is dropped instead."""

    async def release_schedules(self, scheduler_id: str, results: Sequence[object]) -> None:
        present = [r for r in results if r.schedule_id in self._schedules_by_id]  # type: ignore[attr-defined]
        await super().release_schedules(scheduler_id, present)  # type: ignore[arg-type]


def new_scheduler() -> AsyncScheduler:
    return AsyncScheduler(data_store=_MemoryStore())
