"""The node's event bus: what happened, numbered in order, fanned out to every subscriber.

Publishing never waits. A subscriber that reads slower than events arrive loses its oldest
events and is told how many (``dropped``), so one slow WebSocket client cannot stall the node.
"""

from __future__ import annotations

__all__ = ("EVENT_TYPES", "LOG_LEVELS", "Event", "EventBus", "Subscription")

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

EVENT_TYPES = (
    "spec.applied",
    "spec.rejected",
    "component.status",
    "peer.connected",
    "peer.disconnected",
    "peer.pending",
    "request.completed",
    "log",
)

LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # 1, 2, 3, ... per node run: a gap tells a subscriber it lost events
    type: str
    time: float
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time))
        return {
            "seq": self.seq,
            "type": self.type,
            "time": f"{stamp}.{int(self.time % 1 * 1000):03d}Z",
            "data": dict(self.data),
        }


class Subscription:
    """One subscriber's queue: at most ``capacity`` events, the oldest dropped first."""

    def __init__(
        self, bus: EventBus, *, types: frozenset[str], capacity: int, min_log_level: int
    ) -> None:
        self._bus = bus
        self.types = types
        self.capacity = capacity
        self.min_log_level = min_log_level
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._ready = trio.Event()
        self.closed = False

    def wants(self, event: Event) -> bool:
        if event.type not in self.types:
            return False
        if event.type == "log":
            return LOG_LEVELS.get(str(event.data.get("level")), 0) >= self.min_log_level
        return True

    def _offer(self, event: Event) -> None:
        """Called by the bus under its lock."""
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)

    def _wake(self) -> None:
        self._ready.set()

    async def next(self) -> Event:
        """The oldest queued event; waits for one. Raises trio.EndOfChannel once closed."""
        while True:
            with self._bus.lock:
                if self._queue:
                    return self._queue.popleft()
                if self.closed:
                    raise trio.EndOfChannel
                if self._ready.is_set():
                    self._ready = trio.Event()
                ready = self._ready
            await ready.wait()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Owned by the node run. ``publish`` may be called from any thread (log records come
    from worker threads too); subscribers are woken on the trio thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._seq = 0
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None
        self._wake_pending = False
        self._wanted: frozenset[str] = frozenset()

    def bind(self) -> None:
        """Call once from the trio thread, before anything publishes from another thread."""
        self._trio_token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()

    @property
    def last_seq(self) -> int:
        return self._seq

    def listening(self, type_: str) -> bool:
        """Whether anyone wants ``type_``: lets a hot path skip building an event's data."""
        return type_ in self._wanted

    def subscribe(
        self,
        types: Iterable[str] = EVENT_TYPES,
        *,
        capacity: int = 1000,
        min_log_level: str = "info",
    ) -> Subscription:
        subscription = Subscription(
            self,
            types=frozenset(types),
            capacity=capacity,
            min_log_level=LOG_LEVELS[min_log_level],
        )
        with self.lock:
            self._subscribers.append(subscription)
            self._wanted = self._wanted | subscription.types
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self.lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)
            subscription.closed = True
            self._wanted = frozenset().union(*(s.types for s in self._subscribers))
        self._wake([subscription])

    def publish(self, type_: str, data: Mapping[str, Any]) -> int:
        """Returns the event's sequence number."""
        with self.lock:
            self._seq += 1
            event = Event(self._seq, type_, time.time(), data)
            woken = [s for s in self._subscribers if s.wants(event)]
            for subscription in woken:
                subscription._offer(event)
        if woken:
            self._wake(woken)
        return event.seq

    def _wake(self, subscriptions: list[Subscription]) -> None:
        if self._trio_thread is None or threading.get_ident() == self._trio_thread:
            for subscription in subscriptions:
                subscription._wake()
            return
        # From another thread: hand the wake-up to the trio thread, once per burst.
        with self.lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        assert self._trio_token is not None
        try:
            self._trio_token.run_sync_soon(self._wake_all)
        except trio.RunFinishedError:
            pass

    def _wake_all(self) -> None:
        with self.lock:
            self._wake_pending = False
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription._wake()
