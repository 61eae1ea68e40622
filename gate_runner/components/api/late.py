"""Noticing a client that leaves a non-streamed request, without a task per request: only a
request still running after a short grace gets a watcher, so the many fast ones cost a
deque append, and a long generation is still cut short when nobody waits for it."""

from __future__ import annotations

__all__ = ("GRACE", "LateWatcher", "Ticket")

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import trio
from anyio.abc import TaskStatus

Receive = Any  # the ASGI receive callable


class Progress(Protocol):
    responded: bool  # the last byte of the response has been handed to the server


# A non-streamed answer from a local engine on loopback takes about a millisecond; a real
# generation takes seconds. 50 ms sits between: a request past it gets its watcher, and a
# client that left costs the engine at most this much (plus a sweep) of extra work.
GRACE = 0.05


class Ticket:
    """One request in flight: cancelled through ``scope`` when its client leaves."""

    __slots__ = ("deadline", "done", "gone", "progress", "receive", "scope", "watch_scope")

    def __init__(self, receive: Receive, progress: Progress, deadline: float) -> None:
        self.receive = receive
        self.progress = progress
        self.deadline = deadline
        self.scope = trio.CancelScope()
        self.watch_scope = trio.CancelScope()
        self.done = False
        self.gone = False


class LateWatcher:
    """Owned by the router. ``run`` holds the nursery the watchers live in."""

    def __init__(self, *, grace: float = GRACE) -> None:
        self._grace = grace
        self._pending: deque[Ticket] = deque()
        self._nursery: trio.Nursery | None = None

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    # A sweep every half grace: a request is watched at most 1.5 grace in.
                    await trio.sleep(self._grace / 2)
                    self._sweep(nursery)
        finally:
            self._nursery = None
            self._pending.clear()

    def _sweep(self, nursery: trio.Nursery) -> None:
        now = trio.current_time()
        pending = self._pending
        while pending and pending[0].deadline <= now:
            ticket = pending.popleft()
            if not ticket.done:
                nursery.start_soon(self._watch, ticket)

    @staticmethod
    async def _watch(ticket: Ticket) -> None:
        with ticket.watch_scope:
            while (await ticket.receive())["type"] != "http.disconnect":
                pass
            # Once the response is complete, hypercorn reports the stream closed as a
            # disconnect too; only one that comes first cuts the request short.
            if not ticket.progress.responded and not ticket.done:
                ticket.gone = True
                ticket.scope.cancel()

    @contextmanager
    def watching(self, receive: Receive, progress: Progress) -> Iterator[Ticket]:
        """Run the body under the ticket's scope; afterwards ``ticket.gone`` says whether
        it was cut short because the client left."""
        ticket = Ticket(receive, progress, trio.current_time() + self._grace)
        self._pending.append(ticket)
        try:
            with ticket.scope:
                yield ticket
        finally:
            ticket.done = True
            ticket.watch_scope.cancel()
