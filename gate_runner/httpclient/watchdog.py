"""Ending waits on upstream sockets from outside, by closing the socket: read timeouts (the
run's ``Watchdog``) and a caller giving up (``AbortSignal``), with no cancel scope per wait,
which costs about as much as the rest of an upstream read."""

from __future__ import annotations

__all__ = ("SWEEP_INTERVAL", "AbortSignal", "Watchdog", "current_watchdog")

from typing import Protocol

import trio
from anyio.abc import TaskStatus

# How often the watchdog looks: a read timeout fires up to this late.
SWEEP_INTERVAL = 0.05


class Endable(Protocol):
    """A connection, as the watchdog and the abort signal see it."""

    def end(self, reason: str) -> None:
        """Close the socket now, waking its waiter; the wait raises for ``reason``."""


class AbortSignal:
    """Handed to ``HTTPPool.stream(abort=...)``; ``abort()`` may come from any task of the
    run. It closes the connection the exchange waits on (or the next one it would wait on),
    and from then on every wait of the exchange raises ``UpstreamAborted``. The router's
    ticket is one: a client that leaves stops the engine's work."""

    __slots__ = ("_waiting", "aborted")

    def __init__(self) -> None:
        self.aborted = False
        self._waiting: Endable | None = None  # the connection waiting now, if any

    def abort(self) -> None:
        self.aborted = True
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.end("aborted")

    def wait_on(self, conn: Endable) -> None:
        """A wait on ``conn`` begins (the connection calls this, then ``done_waiting``)."""
        self._waiting = conn

    def done_waiting(self) -> None:
        self._waiting = None


_CURRENT: trio.lowlevel.RunVar[Watchdog | None] = trio.lowlevel.RunVar(
    "gate_httpclient_watchdog", default=None
)


def current_watchdog() -> Watchdog | None:
    """The watchdog of this trio run, or None when none is running."""
    return _CURRENT.get()


class Watchdog:
    """Read timeouts for every connection of a trio run, by one sweeping task: a connection
    about to wait registers its deadline, and the sweep closes those past it, so the wait
    raises ``UpstreamTimeout``. Entering a trio cancel scope runs three generator-based
    context managers; with two per request (this and the router's) the scopes cost Gate
    about 6% of its throughput. Connections made while no watchdog runs (tests, the CLI)
    keep a cancel scope per wait, with the same errors."""

    def __init__(self, *, interval: float = SWEEP_INTERVAL) -> None:
        self._interval = interval
        self._deadlines: dict[Endable, float] = {}
        self.running = False

    def watch(self, conn: Endable, deadline: float) -> None:
        self._deadlines[conn] = deadline

    def unwatch(self, conn: Endable) -> None:
        self._deadlines.pop(conn, None)

    def __len__(self) -> int:
        return len(self._deadlines)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Be this run's watchdog until cancelled. Run it for the life of the run (the node
        starts it before its components and stops it after them): waits that begin while
        none runs fall back to a cancel scope, but waits registered when it stops lose
        their timeout."""
        if _CURRENT.get() is not None:
            raise RuntimeError("a watchdog is already running in this trio run")
        _CURRENT.set(self)
        self.running = True
        try:
            task_status.started()
            while True:
                await trio.sleep(self._interval)
                self.sweep(trio.current_time())
        finally:
            self.running = False
            _CURRENT.set(None)

    def sweep(self, now: float) -> None:
        expired = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
        for conn in expired:
            del self._deadlines[conn]
            conn.end("timeout")
