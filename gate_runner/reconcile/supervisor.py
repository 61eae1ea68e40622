"""The supervisor: runs each component instance in its own cancel scope under one task group."""

from __future__ import annotations

__all__ = ("Backoff", "Supervisor")

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from gate_runner.components.base import Component, RunContext
from gate_runner.errors import PermanentError, TransientError
from gate_runner.reconcile.planner import Key, Plan, plan
from gate_runner.reconcile.status import ComponentStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential restart delay. No jitter: these are local restarts, not a herd of clients."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    # An instance that stayed up this long starts again from `initial` after its next failure.
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** max(0, failures - 1)))


def _leaf(error: Exception) -> Exception:
    """A component's own task group wraps its error in an ExceptionGroup; unwrap a lone one
    so that a TransientError raised inside it still reads as transient."""
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class _Instance:
    def __init__(
        self, *, key: Key, component: Component[Any], slice_: Hashable, generation: int
    ) -> None:
        self.key = key
        self.component = component
        self.slice = slice_
        self.generation = generation
        self.status = ComponentStatus(kind=key[0], key=key[1])
        self.ctx: RunContext
        self.scope = anyio.CancelScope()
        self.running = False  # between task_status.started() and run() returning
        self.settled = anyio.Event()  # the first attempt is ready, or has failed
        self.done = anyio.Event()
        self.wake = anyio.Event()  # cuts a backoff short

    @property
    def name(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"


class _StartedSignal:
    """The ``task_status`` given to ``Component.run``."""

    def __init__(self, supervisor: Supervisor, inst: _Instance) -> None:
        self._supervisor = supervisor
        self._inst = inst

    def started(self, value: object = None) -> None:
        inst = self._inst
        inst.running = True
        # A component that set its own Ready condition before starting (say, Ready=False
        # while it loads in the background) keeps it; otherwise starting means ready.
        ready = inst.status.conditions.get("Ready")
        if ready is None or ready.reason == "Starting":
            self._supervisor._set(inst, "Ready", True, "Started", "")
        self._supervisor._settle(inst)


class Supervisor:
    """Owns the running instances. ``apply`` executes one plan: stops first, then in-place
    updates (falling back to restart), then starts, and waits for the new instances to
    settle (ready or failed) up to ``settle_timeout``."""

    def __init__(
        self,
        *,
        task_group: TaskGroup,
        stop_timeout: float = 5.0,
        backoff: Backoff | None = None,
        on_change: Callable[[ComponentStatus], None] | None = None,
    ) -> None:
        self._tg = task_group
        self._stop_timeout = stop_timeout
        self._backoff = backoff or Backoff()
        self._on_change = on_change
        self._instances: dict[Key, _Instance] = {}

    # -- queries ----------------------------------------------------------------------

    def actual(self) -> dict[Key, Hashable]:
        return {key: inst.slice for key, inst in self._instances.items()}

    def statuses(self) -> list[ComponentStatus]:
        return [self._instances[k].status for k in sorted(self._instances)]

    # -- one reconcile pass -------------------------------------------------------------

    async def apply(
        self,
        desired: Mapping[Key, tuple[Component[Any], Hashable]],
        *,
        generation: int,
        settle_timeout: float = 10.0,
    ) -> Plan:
        the_plan = plan(desired={k: s for k, (_, s) in desired.items()}, actual=self.actual())
        async with anyio.create_task_group() as tg:
            for stop in the_plan.stops:
                tg.start_soon(self._stop, self._instances[stop.key])

        starting: list[_Instance] = []
        for update in the_plan.updates:
            inst = self._instances[update.key]
            if inst.running and await self._update_in_place(inst, update.new):
                inst.slice = update.new
                inst.generation = generation
                inst.status.observed_generation = generation
                self._changed(inst)
                continue
            await self._stop(inst)
            inst_new = self._spawn(update.key, desired[update.key][0], update.new, generation)
            inst_new.status.restarts = inst.status.restarts + 1
            starting.append(inst_new)
        for start in the_plan.starts:
            starting.append(self._spawn(start.key, desired[start.key][0], start.slice, generation))

        # Untouched instances have seen this generation too; failing ones get an early retry.
        changed = {u.key for u in the_plan.updates} | {s.key for s in the_plan.starts}
        for key, inst in self._instances.items():
            if key not in changed:
                inst.generation = generation
                inst.status.observed_generation = generation
                inst.wake.set()

        with anyio.move_on_after(settle_timeout):
            for inst in starting:
                await inst.settled.wait()
        return the_plan

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for inst in list(self._instances.values()):
                tg.start_soon(self._stop, inst)

    # -- instance lifecycle -----------------------------------------------------------

    async def _update_in_place(self, inst: _Instance, new: Hashable) -> bool:
        try:
            return await inst.component.update(inst.key[1], inst.slice, new)
        except Exception:
            log.exception("in-place update failed; restarting", extra={"component": inst.key})
            return False

    def _spawn(
        self, key: Key, component: Component[Any], slice_: Hashable, generation: int
    ) -> _Instance:
        inst = _Instance(key=key, component=component, slice_=slice_, generation=generation)
        inst.ctx = RunContext(
            name=key[1], set_condition=lambda t, s, r, m: self._set(inst, t, s, r, m)
        )
        self._instances[key] = inst
        self._set(inst, "Ready", False, "Starting", "")
        self._tg.start_soon(self._supervise, inst, name=f"gate:{key[0]}/{key[1]}")
        return inst

    async def _stop(self, inst: _Instance) -> None:
        """Graceful trigger first, then cancel after the deadline."""
        inst.ctx.stopping.set()
        inst.wake.set()
        with anyio.move_on_after(self._stop_timeout):
            await inst.done.wait()
        if not inst.done.is_set():
            log.warning(
                "component did not stop within %.1fs; cancelling",
                self._stop_timeout,
                extra={"component": inst.name},
            )
            inst.scope.cancel()
            await inst.done.wait()
        if self._instances.get(inst.key) is inst:
            del self._instances[inst.key]

    async def _supervise(self, inst: _Instance) -> None:
        failures = 0
        with inst.scope:
            try:
                while not inst.ctx.stopping.is_set():
                    began = anyio.current_time()
                    try:
                        await self._run_once(inst)
                    except PermanentError as e:
                        self._fail(inst, "PermanentError", str(e))
                        log.error("%s failed: %s", inst.name, e, extra={"component": inst.name})
                        # Retrying cannot help: wait for the slice to change (a restart).
                        await inst.ctx.stopping.wait()
                    except Exception as raised:  # any other failure is retried with backoff
                        if anyio.current_time() - began >= self._backoff.reset_after:
                            failures = 0
                        failures += 1
                        await self._back_off(inst, _leaf(raised), failures)
            finally:
                inst.running = False
                inst.done.set()

    async def _run_once(self, inst: _Instance) -> None:
        self._set(inst, "Ready", False, "Starting", "")
        await inst.component.run(
            inst.key[1], inst.slice, inst.ctx, task_status=_StartedSignal(self, inst)
        )
        if not inst.ctx.stopping.is_set():
            raise TransientError("exited without being asked to stop")

    async def _back_off(self, inst: _Instance, error: Exception, failures: int) -> None:
        """Wait before the next attempt: the error's own delay, else exponential backoff.
        A new spec (``wake``) or a stop cuts the wait short."""
        transient = isinstance(error, TransientError)
        delay = self._backoff.delay(failures)
        if isinstance(error, TransientError) and error.delay is not None:
            delay = error.delay
        if transient:
            log.warning("%s: %s", inst.name, error, extra={"component": inst.name})
        else:
            log.error("%s crashed", inst.name, exc_info=error, extra={"component": inst.name})
        reason = "TransientError" if transient else "Crashed"
        self._fail(inst, reason, f"{error}; retry {failures} in {delay:.1f}s")
        inst.wake = anyio.Event()
        with anyio.move_on_after(delay):
            await inst.wake.wait()
        if not inst.ctx.stopping.is_set():
            inst.status.restarts += 1

    def _fail(self, inst: _Instance, reason: str, message: str) -> None:
        inst.running = False
        self._set(inst, "Ready", False, reason, message)
        self._settle(inst)

    # -- status -----------------------------------------------------------------------

    def _set(self, inst: _Instance, type_: str, status: bool, reason: str, message: str) -> None:
        if inst.status.set(type_, status, reason, message):
            self._changed(inst)

    def _settle(self, inst: _Instance) -> None:
        if inst.status.observed_generation != inst.generation:
            inst.status.observed_generation = inst.generation
            self._changed(inst)
        inst.settled.set()

    def _changed(self, inst: _Instance) -> None:
        if self._on_change is not None and self._instances.get(inst.key) is inst:
            self._on_change(inst.status)
