"""Trust decisions and rate limits, table-driven, with a fake clock."""

from __future__ import annotations

import pytest

from gate_runner.spec import AllowRule, PeerSpec, RateLimit, TrustSpec
from gate_runner.trust import Grant, RateLimiter, TrustPolicy

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
        ("friends", CAROL, "qwen2", 403),  # known (in spec.peers) but without a rule
        ("friends", MALLORY, "llama3:8b", 403),  # not a friend
        ("public", MALLORY, "qwen2", 200),
        ("public", CAROL, "qwen2", 200),  # no rule: nothing narrows a known peer
        ("public", BOB, "qwen2", 403),  # rules still narrow a listed peer
    ],
)
def test_may_use(mode: str, peer: str, model: str, status: int) -> None:
    policy = TrustPolicy(TrustSpec(mode=mode, allow=RULES), PEERS)
    decision = policy.may_use(peer, model)
    assert decision.status == status and decision.allowed == (status == 200)
    if status != 200:
        assert decision.reason


def test_a_known_peer_without_a_rule_is_told_the_fix() -> None:
    """Adding a peer in order to use its engines must not open this node to it."""
    policy = TrustPolicy(TrustSpec(mode="friends", allow=RULES), PEERS)
    refused = policy.admit(CAROL)
    assert refused.status == 403
    assert "peer carol is known but not trusted" in refused.reason
    assert "`{peer: carol}` under spec.trust.allow" in refused.reason
    assert f"gate peers add carol {CAROL} --trusted" in refused.reason
    stranger = policy.admit(MALLORY).reason
    assert "not a friend" in stranger and "--trusted" in stranger


@pytest.mark.parametrize(
    ("mode", "allow", "untrusted"),
    [
        ("friends", RULES, ("carol",)),
        ("friends", (*RULES, AllowRule(peer="carol")), ()),
        ("friends", (), ("bob", "carol")),
        ("public", (), ()),  # anyone may: nobody to warn of
        ("private", (), ()),  # nobody may, by choice
    ],
)
def test_untrusted_names_declared_peers_without_a_rule(
    mode: str, allow: tuple[AllowRule, ...], untrusted: tuple[str, ...]
) -> None:
    assert TrustPolicy(TrustSpec(mode=mode, allow=allow), PEERS).untrusted() == untrusted


@pytest.mark.parametrize(
    ("mode", "peer", "grant"),
    [
        ("friends", BOB, Grant(("llama3*",), RateLimit(requests_per_minute=60))),
        ("friends", CAROL, None),
        ("friends", MALLORY, None),
        ("public", CAROL, Grant()),
        ("public", MALLORY, Grant()),
        ("public", BOB, Grant(("llama3*",), RateLimit(requests_per_minute=60))),
        ("private", BOB, None),
    ],
)
def test_grant_is_what_a_peer_may_use(mode: str, peer: str, grant: Grant | None) -> None:
    rules = (AllowRule(peer="bob", models=("llama3*",), rate_limit=RateLimit(60)),)
    policy = TrustPolicy(TrustSpec(mode=mode, allow=rules), PEERS)
    assert policy.grant(peer) == grant


def test_offered_models_are_filtered_per_peer() -> None:
    policy = TrustPolicy(TrustSpec(mode="friends", allow=(*RULES, AllowRule(peer="carol"))), PEERS)
    models = ["llama3:8b", "llama3:70b", "qwen2"]
    assert policy.offered(BOB, models) == ["llama3:8b", "llama3:70b"]
    assert policy.offered(CAROL, models) == models
    assert policy.offered(MALLORY, models) == []
    assert policy.name_of(BOB) == "bob" and policy.name_of(MALLORY) is None
    untrusted = TrustPolicy(TrustSpec(mode="friends", allow=RULES), PEERS)
    assert untrusted.offered(CAROL, models) == []


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
