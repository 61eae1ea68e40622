"""The node's scheduler survives a schedule removed while it fires (apscheduler 4.0.0a6's
memory store raised KeyError there, which stopped the scheduler and with it `gate up`)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from apscheduler import ConflictPolicy
from apscheduler.triggers.interval import IntervalTrigger

from gate_runner.reconcile.scheduling import new_scheduler

pytestmark = pytest.mark.anyio


async def test_removing_a_schedule_as_it_fires_keeps_the_scheduler_running() -> None:
    fired = 0

    async def tick() -> None:
        nonlocal fired
        fired += 1

    async with new_scheduler() as scheduler:
        await scheduler.start_in_background()
        await scheduler.configure_task("tick", func=tick)
        for i in range(30):
            # An interval schedule fires as soon as it is added: removing it at once is the
            # stop-right-after-start of a provider or discovery.
            await scheduler.add_schedule(
                "tick",
                IntervalTrigger(seconds=60),
                id=f"s{i}",
                conflict_policy=ConflictPolicy.replace,
            )
            await anyio.lowlevel.checkpoint()
            await scheduler.remove_schedule(f"s{i}")
        with anyio.fail_after(5):
            await scheduler.add_schedule("tick", IntervalTrigger(seconds=60), id="last")
            while fired == 0 or scheduler.state.name != "started":
                await anyio.sleep(0.01)
        assert scheduler.state.name == "started"
        await scheduler.stop()
