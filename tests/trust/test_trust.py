"""Trust decisions and rate limits, table-driven, with a fake clock."""

from __future__ import annotations

import pytest

from gate_runner.spec import AllowRule, PeerSpec, RateLimit, TrustSpec
from gate_runner.trust import RateLimiter, TrustPolicy

BOB = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
CAROL = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
MALLORY = "12D3KooWKQqfwzWGzRrG52B2GbhfXJZHPKtt7wu2uxm1vK1AYAiv"
PEERS = (PeerSpec(name="bob", id=BOB), PeerSpec(name="carol", id=CAROL))
RULES = (AllowRule(peer="bob", models=("llama3*",)),)


@pytest.mark.parametrize(
    ("mode", "peer", "model", "status"),
    [
        ("private", BOB, "llama3:8b", 403),
        ("friends", BOB, "llama3:8b", 200),
        ("friends", BOB, "qwen2", 403),  # outside bob's allowlist
        ("friends", CAROL, "qwen2", 200),  # a friend without a rule gets every model
        ("friends", MALLORY, "llama3:8b", 403),  # not a friend
        ("public", MALLORY, "qwen2", 200),
        ("public", BOB, "qwen2", 403),  # rules still narrow a listed peer
    ],
)
def test_may_use(mode: str, peer: str, model: str, status: int) -> None:
    policy = TrustPolicy(TrustSpec(mode=mode, allow=RULES), PEERS)
    decision = policy.may_use(peer, model)
    assert decision.status == status and decision.allowed == (status == 200)
    if status != 200:
        assert decision.reason


def test_offered_models_are_filtered_per_peer() -> None:
    policy = TrustPolicy(TrustSpec(mode="friends", allow=RULES), PEERS)
    models = ["llama3:8b", "llama3:70b", "qwen2"]
    assert policy.offered(BOB, models) == ["llama3:8b", "llama3:70b"]
    assert policy.offered(CAROL, models) == models
    assert policy.offered(MALLORY, models) == []
    assert policy.name_of(BOB) == "bob" and policy.name_of(MALLORY) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(requests_per_minute=3)
    for _ in range(3):
        assert limiter.acquire(BOB, limit).allowed
        limiter.release(BOB)
    refused = limiter.acquire(BOB, limit)
    assert refused.status == 429 and refused.retry_after == pytest.approx(20.0)
    clock.now += 20.0  # one token back
    assert limiter.acquire(BOB, limit).allowed
    assert limiter.acquire(CAROL, limit).allowed  # buckets are per peer


def test_concurrent_cap() -> None:
    limiter = RateLimiter(clock=Clock())
    limit = RateLimit(concurrent=2)
    assert limiter.acquire(BOB, limit).allowed
    assert limiter.acquire(BOB, limit).allowed
    assert limiter.acquire(BOB, limit).status == 429
    limiter.release(BOB)
    assert limiter.acquire(BOB, limit).allowed
