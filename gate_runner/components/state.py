"""The `state` component: the health of state.db as conditions, so `gate status` shows what
the log says (a damaged state.db set aside at start, request-log writes failing)."""

from __future__ import annotations

__all__ = ("StateComponent", "StateConditions", "state_conditions")

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import anyio
from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext
from gate_runner.spec import NodeSpec
from gate_runner.state.db import SetAside

if TYPE_CHECKING:
    from gate_runner.state import StateDB
    from gate_runner.state.requests import RequestLog


class StateConditions(NamedTuple):
    """What the state component reports: Ready's reason and message, and whether Degraded."""

    reason: str
    message: str
    degraded: bool


def state_conditions(
    *, path: Path, set_aside: tuple[SetAside, ...], write_error: str | None
) -> StateConditions:
    """The conditions of `state/state.db` for these facts.

    Ready stays true, since the node runs on a working state.db, but its reason and message
    name the problem: the table of `gate status` shows Ready's reason and message and no
    other condition, so a problem put only in Degraded would not be seen there. Degraded
    (true, same reason and message) is for checks that read node.status. The reasons:
    ``Open`` (all well; the message is the path), ``Recovered`` (a damaged state.db was set
    aside; it stays until the user removes that file, across restarts) and ``WriteFailing``
    (the request log cannot write; it clears with the next good write). A write failure
    comes first: it is happening now, and losing records.
    """
    problems = []
    if write_error is not None:
        problems.append(("WriteFailing", write_error))
    if set_aside:
        notice = set_aside[0].describe()
        if len(set_aside) > 1:
            notice += f" (and {len(set_aside) - 1} older state.db.corrupt-* files)"
        problems.append(("Recovered", notice))
    if not problems:
        return StateConditions("Open", str(path), False)
    return StateConditions(problems[0][0], "; ".join(m for _, m in problems), True)


class StateComponent:
    kind: ClassVar[str] = "state"

    def __init__(self, *, state: StateDB, requests: RequestLog) -> None:
        self._state = state
        self._requests = requests

    def desired(self, spec: NodeSpec) -> Mapping[str, Path]:
        return {"state.db": spec.data_dir}

    async def run(
        self, name: str, slice_: Path, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        state, requests = self._state, self._requests

        def report() -> None:
            now = state_conditions(
                path=state.path, set_aside=state.set_aside, write_error=requests.write_error
            )
            ctx.set_condition("Ready", True, now.reason, now.message)
            if now.degraded:
                ctx.set_condition("Degraded", True, now.reason, now.message)
            else:
                ctx.set_condition("Degraded", False, "Healthy", "")

        report()
        task_status.started()
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                while True:
                    await requests.write_error_changed()
                    report()

            tg.start_soon(follow)
            await ctx.stopping.wait()
            tg.cancel_scope.cancel()

    async def update(self, name: str, old: Path, new: Path) -> bool:
        return True  # dataDir cannot change while the node runs (the controller refuses it)
