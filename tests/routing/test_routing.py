"""Routing pieces: backoff bounds, the breaker's state machine, candidate ordering."""

from __future__ import annotations

import pytest

from gate_runner.routing import CircuitBreaker, LoadStats, full_jitter, order_targets


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 1.0, 0.2),
        (2, 1.0, 0.4),
        (3, 0.5, 0.4),
        (10, 1.0, 5.0),  # capped
        (4, 0.0, 0.0),  # full jitter reaches zero
    ],
)
def test_full_jitter(attempt: int, rand: float, expected: float) -> None:
    got = full_jitter(attempt, initial=0.2, maximum=5.0, rand=lambda: rand)
    assert got == pytest.approx(expected)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_probes_after_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=3, cooldown=5.0, max_cooldown=20.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    assert b.retry_after() == pytest.approx(5.0)
    clock.now += 5.0
    assert b.state == "half-open"
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.failure()  # probe failed: open again, cooldown doubled
    assert b.state == "open" and b.retry_after() == pytest.approx(10.0)
    clock.now += 10.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_breaker_success_resets_the_failure_count() -> None:
    b = CircuitBreaker(threshold=2, clock=Clock())
    b.failure()
    b.success()
    b.failure()
    assert b.state == "closed"


def test_breaker_release_frees_the_probe_slot() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown=1.0, clock=clock)
    b.failure()
    clock.now += 1.0
    assert b.allow()
    b.release()
    assert b.allow()


def test_load_stats_ewma_and_outstanding() -> None:
    s = LoadStats(alpha=0.5, initial=1.0)
    s.begin()
    s.begin()
    assert s.score == pytest.approx(3.0)
    s.end(0.0)
    assert s.ewma == pytest.approx(0.5) and s.outstanding == 1
    s.end(None)  # failed or cancelled: no latency sample
    assert s.ewma == pytest.approx(0.5) and s.outstanding == 0 and s.served == 1


LOCAL = {"a", "b"}


@pytest.mark.parametrize(
    ("strategy", "loads", "expected"),
    [
        ("local-only", {"a": 0, "b": 0, "x": 0}, ["a", "b"]),
        ("local-only", {"a": 3, "b": 0, "x": 0}, ["b", "a"]),
        ("prefer-local", {"a": 5, "b": 5, "x": 0}, ["a", "b", "x"]),
        ("load-balance", {"a": 5, "b": 1, "x": 0}, ["x", "b", "a"]),
        ("load-balance", {"a": 0, "b": 0, "x": 0}, ["a", "b", "x"]),  # ties: local, spec order
    ],
)
def test_order_targets(strategy: str, loads: dict[str, int], expected: list[str]) -> None:
    stats = {t: LoadStats(initial=0.1) for t in loads}
    for t, n in loads.items():
        for _ in range(n):
            stats[t].begin()
    got = order_targets(
        ["a", "x", "b"] if strategy != "load-balance" else ["a", "b", "x"],
        strategy=strategy,
        is_local=lambda t: t in LOCAL,
        stats=lambda t: stats[t],
    )
    assert got == expected


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown routing strategy"):
        order_targets(
            ["a"], strategy="random", is_local=lambda t: True, stats=lambda t: LoadStats()
        )
