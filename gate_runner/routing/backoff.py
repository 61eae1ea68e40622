"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

__all__ = ("full_jitter",)

import random
from collections.abc import Callable


def full_jitter(
    attempt: int, *, initial: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry).

    Full jitter (a uniform draw from zero to the exponential cap) spreads out clients that
    failed together, so a recovering engine is not hit by all of them at once.
    """
    cap = min(maximum, initial * (2.0 ** max(0, attempt - 1)))
    return cap * rand()
