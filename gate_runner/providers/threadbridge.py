"""The bridge from trio to a blocking call on a worker thread: the call runs there, and a
cancelled caller stops it through a flag instead of abandoning it."""

from __future__ import annotations

__all__ = ("run_stoppable",)

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


async def run_stoppable(fn: Callable[[], T], stop: threading.Event) -> T:
    """Run ``fn`` on a worker thread. When this task is cancelled meanwhile, set ``stop``,
    which ``fn`` must check often, and still wait for ``fn``: a thread that holds a resource
    (a llama.cpp model) must never outlive the call, and with ``stop`` set it ends soon."""
    done = False
    results: list[T] = []
    failures: list[Exception] = []

    async def stop_if_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not done:
                stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_if_cancelled)
        try:
            results.append(await anyio.to_thread.run_sync(fn))
        except Exception as e:  # raised below, outside the task group's exception group
            failures.append(e)
        done = True
        tg.cancel_scope.cancel()
    if failures:
        raise failures[0]
    return results[0]
