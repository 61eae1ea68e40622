"""The `timer` component: ticks at an interval. Test-only, it exercises plan, update and restart
in a real `gate up`: ``python -m tests.timer up -f gate.yaml`` runs the node with it registered
after the node's own components (its instances come from the spec's debug.timers)."""

from __future__ import annotations

__all__ = ("TimerComponent",)

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
from anyio.abc import TaskStatus

from gate_runner.components.base import RunContext

if TYPE_CHECKING:
    from gate_runner.spec import NodeSpec, TimerSpec

log = logging.getLogger(__name__)


class TimerComponent:
    kind: ClassVar[str] = "timer"

    def __init__(self) -> None:
        self._interval: dict[str, float] = {}
        self._ctx: dict[str, RunContext] = {}
        self.ticks: dict[str, int] = {}

    def desired(self, spec: NodeSpec) -> Mapping[str, TimerSpec]:
        return {t.name: t for t in spec.debug.timers}

    async def run(
        self, name: str, slice_: TimerSpec, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        self._interval[name] = slice_.interval
        self._ctx[name] = ctx
        self.ticks[name] = 0
        ctx.set_condition("Ready", True, "Ticking", f"every {slice_.interval:g}s")
        task_status.started()
        try:
            while not ctx.stopping.is_set():
                with anyio.move_on_after(self._interval[name]):
                    await ctx.stopping.wait()
                if not ctx.stopping.is_set():
                    self.ticks[name] += 1
                    log.debug("timer tick", extra={"timer": name, "ticks": self.ticks[name]})
        finally:
            self._interval.pop(name, None)
            self._ctx.pop(name, None)

    async def update(self, name: str, old: TimerSpec, new: TimerSpec) -> bool:
        # The interval is read on every tick, so a new one applies from the next tick.
        if name not in self._ctx:
            return False
        self._interval[name] = new.interval
        self._ctx[name].set_condition("Ready", True, "Ticking", f"every {new.interval:g}s")
        return True


def main(argv: list[str]) -> int:
    from gate_runner.cli.node import run_foreground
    from gate_runner.reconcile.node import NodeKind

    parser = argparse.ArgumentParser(prog="python -m tests.timer")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("-f", "--file", required=True)
    parser.add_argument("--log-format", default="auto")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    return run_foreground(Path(args.file).absolute(), NodeKind(extra=(TimerComponent,)), args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
