"""Choosing where a request goes: candidate order per strategy, retries and circuit breakers."""

from __future__ import annotations

from gate_runner.routing.backoff import full_jitter
from gate_runner.routing.balancer import LoadStats, order_targets
from gate_runner.routing.breaker import CircuitBreaker

__all__ = ("CircuitBreaker", "LoadStats", "full_jitter", "order_targets")
