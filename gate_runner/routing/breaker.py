"""The circuit breaker kept per target: closed, open, half-open."""

from __future__ import annotations

__all__ = ("CircuitBreaker",)

import time
from collections.abc import Callable


class CircuitBreaker:
    """Stops sending to a target that keeps failing, and probes it again later.

    closed: requests flow; ``threshold`` consecutive failures open it.
    open: requests are refused until ``cooldown`` has passed, then it is half-open.
    half-open: one probe request is let through; success closes the breaker, failure
    opens it again with the cooldown doubled (up to ``max_cooldown``).
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 5.0,
        max_cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def tune(self, *, threshold: int, cooldown: float) -> None:
        """Follow the spec's settings; they may change while the node runs."""
        if cooldown != self._base_cooldown:
            self._cooldown = max(cooldown, min(self._cooldown, self._max_cooldown))
            self._base_cooldown = cooldown
        self._threshold = threshold

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return "half-open"
        return "open"

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def allow(self) -> bool:
        """May a request go to this target now? In half-open this takes the one probe slot."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self._cooldown = self._base_cooldown

    def failure(self) -> None:
        if self._probing:
            # The probe failed: back off harder before the next one.
            self._probing = False
            self._cooldown = min(self._max_cooldown, self._cooldown * 2)
            self._opened_at = self._clock()
            return
        self._failures += 1
        if self._opened_at is None and self._failures >= self._threshold:
            self._opened_at = self._clock()

    def release(self) -> None:
        """The request let through ended with neither verdict (the client went away)."""
        self._probing = False
