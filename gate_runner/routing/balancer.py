"""Load figures per target (outstanding requests, EWMA latency) and candidate ordering."""

from __future__ import annotations

__all__ = ("LoadStats", "order_targets")

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


class LoadStats:
    """Outstanding requests and an exponentially weighted moving average of latency.

    ``alpha`` weighs the newest sample; 0.3 follows a change within a handful of requests
    without jumping on one outlier.
    """

    __slots__ = ("alpha", "ewma", "outstanding", "served")

    def __init__(self, *, alpha: float = 0.3, initial: float = 0.05) -> None:
        self.alpha = alpha
        self.ewma = initial  # seconds; a guess until the first sample
        self.outstanding = 0
        self.served = 0

    def begin(self) -> None:
        self.outstanding += 1

    def end(self, latency: float | None) -> None:
        self.outstanding -= 1
        if latency is not None:
            self.served += 1
            self.ewma += self.alpha * (latency - self.ewma)

    @property
    def score(self) -> float:
        """Expected wait: queue length (plus this request) times typical latency."""
        return (self.outstanding + 1) * self.ewma


def order_targets(
    targets: Sequence[T],
    *,
    strategy: str,
    is_local: Callable[[T], bool],
    stats: Callable[[T], LoadStats],
) -> list[T]:
    """Order the targets that serve a model, best first.

    local-only: local targets only, least loaded first.
    prefer-local: local targets (least loaded first), then remote ones.
    load-balance: every target by score, local winning ties.
    ``targets`` order (the spec's order) breaks remaining ties, so results are stable.
    """
    index = {t: i for i, t in enumerate(targets)}

    def key(t: T) -> tuple[float, int, int]:
        return (stats(t).score, 0 if is_local(t) else 1, index[t])

    if strategy == "local-only":
        return sorted((t for t in targets if is_local(t)), key=key)
    if strategy == "prefer-local":
        local = sorted((t for t in targets if is_local(t)), key=key)
        remote = sorted((t for t in targets if not is_local(t)), key=key)
        return local + remote
    if strategy == "load-balance":
        return sorted(targets, key=key)
    raise ValueError(f"unknown routing strategy {strategy!r}")
