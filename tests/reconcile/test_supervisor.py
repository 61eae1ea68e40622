"""The supervisor against fake components defined here (not mocks of our code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import pytest
from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext
from gate_runner.errors import PermanentError, TransientError
from gate_runner.reconcile.supervisor import Backoff, Supervisor

pytestmark = pytest.mark.anyio


@dataclass
class Script:
    """What the fake does on each run attempt: 'ok', 'transient', 'permanent' or 'crash'."""

    attempts: list[str] = field(default_factory=list)
    in_place: bool = True


class Fake:
    kind: ClassVar[str] = "fake"

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.events: list[tuple[Any, ...]] = []
        self.running: set[str] = set()
        self.attempt_times: list[float] = []

    def desired(self, spec: Any) -> Mapping[str, Any]:
        return {}

    async def run(
        self, name: str, slice_: Any, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        self.attempt_times.append(anyio.current_time())
        action = self.script.attempts.pop(0) if self.script.attempts else "ok"
        self.events.append(("run", name, slice_))
        if action == "transient":
            raise TransientError("port busy")
        if action == "permanent":
            raise PermanentError("bad address")
        if action == "crash":
            raise RuntimeError("boom")
        self.running.add(name)
        try:
            task_status.started()
            await ctx.stopping.wait()
        finally:
            self.running.discard(name)
            self.events.append(("stopped", name, slice_))

    async def update(self, name: str, old: Any, new: Any) -> bool:
        self.events.append(("update", name, old, new))
        return self.script.in_place


def desired(fake: Fake, **slices: Any) -> dict[tuple[str, str], tuple[Fake, Any]]:
    return {(fake.kind, name): (fake, s) for name, s in slices.items()}


async def test_start_update_in_place_and_identical_spec() -> None:
    fake = Fake()
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg)
        p = await sup.apply(desired(fake, a=1, b=1), generation=1)
        assert len(p.starts) == 2 and fake.running == {"a", "b"}
        fake.events.clear()

        p = await sup.apply(desired(fake, a=1, b=1), generation=2)
        assert p.empty and fake.events == []  # identical: nothing touched
        assert all(s.observed_generation == 2 for s in sup.statuses())

        await sup.apply(desired(fake, a=1, b=2), generation=3)
        assert fake.events == [("update", "b", 1, 2)]  # in place: no stop, no run
        assert fake.running == {"a", "b"}
        await sup.stop_all()
        tg.cancel_scope.cancel()


async def test_update_that_cannot_apply_in_place_restarts() -> None:
    fake = Fake(Script(in_place=False))
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg)
        await sup.apply(desired(fake, a=1), generation=1)
        fake.events.clear()
        await sup.apply(desired(fake, a=2), generation=2)
        assert fake.events == [("update", "a", 1, 2), ("stopped", "a", 1), ("run", "a", 2)]
        (status,) = sup.statuses()
        assert status.restarts == 1 and status.observed_generation == 2 and status.ready
        await sup.stop_all()
        tg.cancel_scope.cancel()


async def test_stops_run_before_starts() -> None:
    fake = Fake()
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg)
        await sup.apply(desired(fake, old=1), generation=1)
        fake.events.clear()
        await sup.apply(desired(fake, new=1), generation=2)
        assert fake.events == [("stopped", "old", 1), ("run", "new", 1)]
        await sup.stop_all()
        tg.cancel_scope.cancel()


async def test_transient_failure_restarts_with_growing_backoff() -> None:
    fake = Fake(Script(attempts=["transient", "crash", "transient", "ok"]))
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg, backoff=Backoff(initial=0.05, factor=2.0))
        await sup.apply(desired(fake, a=1), generation=1, settle_timeout=0.01)
        with anyio.fail_after(5):
            while "a" not in fake.running:
                await anyio.sleep(0.01)
        gaps = [b - a for a, b in zip(fake.attempt_times, fake.attempt_times[1:], strict=False)]
        assert len(gaps) == 3
        # 0.05, 0.1, 0.2: each wait at least its backoff, and growing.
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
        (status,) = sup.statuses()
        assert status.ready and status.restarts == 3
        await sup.stop_all()
        tg.cancel_scope.cancel()


async def test_transient_failure_reports_condition_and_new_spec_wakes_it() -> None:
    fake = Fake(Script(attempts=["transient", "ok"]))
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg, backoff=Backoff(initial=30.0))
        await sup.apply(desired(fake, a=1), generation=1)
        (status,) = sup.statuses()
        ready = status.conditions["Ready"]
        assert not ready.status and ready.reason == "TransientError"
        assert "port busy" in ready.message
        # A new spec (even with the same slice) cuts the 30 s backoff short.
        with anyio.fail_after(2):
            await sup.apply(desired(fake, a=1), generation=2)
            while "a" not in fake.running:
                await anyio.sleep(0.01)
        await sup.stop_all()
        tg.cancel_scope.cancel()


async def test_permanent_failure_waits_for_the_slice_to_change() -> None:
    fake = Fake(Script(attempts=["permanent", "ok"]))
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg, backoff=Backoff(initial=0.01))
        await sup.apply(desired(fake, a=1), generation=1)
        await anyio.sleep(0.1)
        assert len(fake.attempt_times) == 1  # not retried
        (status,) = sup.statuses()
        assert status.conditions["Ready"].reason == "PermanentError"
        await sup.apply(desired(fake, a=1), generation=2)  # same slice: still waiting
        await anyio.sleep(0.05)
        assert len(fake.attempt_times) == 1
        await sup.apply(desired(fake, a=2), generation=3)  # changed: restarted
        assert fake.running == {"a"}
        await sup.stop_all()
        tg.cancel_scope.cancel()


class Stubborn(Fake):
    """Ignores the graceful trigger."""

    async def run(
        self, name: str, slice_: Any, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            self.events.append(("cancelled", name))


async def test_stop_cancels_after_the_deadline() -> None:
    fake = Stubborn()
    async with anyio.create_task_group() as tg:
        sup = Supervisor(task_group=tg, stop_timeout=0.1)
        await sup.apply(desired(fake, a=1), generation=1)
        began = anyio.current_time()
        await sup.apply({}, generation=2)
        assert fake.events == [("cancelled", "a")]
        assert 0.1 <= anyio.current_time() - began < 2
        assert sup.statuses() == []
        tg.cancel_scope.cancel()
