"""Noticing a client that leaves a non-streamed request, without a task or a cancel scope
per request: only a request still running after a short grace gets a watcher, and a long
generation is still cut short when nobody waits for it."""

from __future__ import annotations

__all__ = ("GRACE", "LateWatcher", "Ticket")

from collections import deque
from types import TracebackType
from typing import Protocol

import trio
from anyio.abc import TaskStatus

from gate_runner.httpclient import AbortSignal
from gate_runner.wire.asgi import Receive


class Progress(Protocol):
    responded: bool  # the last byte of the response has been handed to the server


# A non-streamed answer from a local engine on loopback takes about a millisecond; a real
# generation takes seconds. 50 ms sits between: a request past it gets its watcher, and a
# client that left costs the engine at most this much (plus a sweep) of extra work.
GRACE = 0.05


class Ticket(AbortSignal):
    """One request in flight, used as a context manager around its forward. It is the
    abort signal of the request's upstream exchanges, so a client that leaves closes the
    upstream connection the request waits on. Backends the signal does not reach (an
    in-process engine, a peer) get a cancel scope per attempt from ``guard``."""

    __slots__ = ("deadline", "done", "gone", "progress", "receive", "scope", "watch_scope")

    def __init__(self, receive: Receive, progress: Progress, deadline: float) -> None:
        super().__init__()
        self.receive = receive
        self.progress = progress
        self.deadline = deadline
        self.done = False
        self.gone = False  # the client left before the response was complete
        self.scope: trio.CancelScope | None = None  # the latest guard()
        self.watch_scope: trio.CancelScope | None = None  # the watcher's, once it has one

    def guard(self) -> trio.CancelScope:
        """A cancel scope for waits that the abort signal does not reach; cancelled when
        the client leaves (at once, if it already has)."""
        scope = self.scope = trio.CancelScope()
        if self.gone:
            scope.cancel()
        return scope

    def client_left(self) -> None:
        self.gone = True
        self.abort()
        if self.scope is not None:
            self.scope.cancel()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done = True
        if self.watch_scope is not None:
            self.watch_scope.cancel()


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
                # Made here, not in the task: a request that ends before the task starts
                # cancels it, and the watcher then returns at once.
                ticket.watch_scope = trio.CancelScope()
                nursery.start_soon(self._watch, ticket)

    @staticmethod
    async def _watch(ticket: Ticket) -> None:
        assert ticket.watch_scope is not None
        with ticket.watch_scope:
            while (await ticket.receive())["type"] != "http.disconnect":
                pass
            # Once the response is complete, hypercorn reports the stream closed as a
            # disconnect too; only one that comes first cuts the request short.
            if not ticket.progress.responded and not ticket.done:
                ticket.client_left()

    def watching(self, receive: Receive, progress: Progress) -> Ticket:
        """A ticket for one request: ``with`` it around the forward, pass it as the
        exchanges' abort signal, and afterwards ``ticket.gone`` says whether the client
        left before the response was complete."""
        ticket = Ticket(receive, progress, trio.current_time() + self._grace)
        self._pending.append(ticket)
        return ticket
