"""Metrics: the exposition text, parsed back with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from gate_runner import __version__
from gate_runner.metrics import LOCAL, OTHER, Metrics
from gate_runner.state.requests import RequestRecord, new_request_id

Labels = frozenset[tuple[str, str]]


def rec(**kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": new_request_id(),
        "started_at": 1_700_000_000.0,
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": "llama3",
        "source": "127.0.0.1:54321",
        "target_node": None,
        "provider": "ollama",
        "status": 200,
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "prompt_tokens": None,
        "completion_tokens": None,
        "attempts": 1,
        "stream": False,
        "error": None,
    }
    fields.update(kw)
    return RequestRecord(**fields)


def samples(m: Metrics, name: str) -> dict[Labels, float]:
    """Every sample called ``name`` in the rendered text, keyed by its label set."""
    body, _ = m.render()
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name:
                found[frozenset(s.labels.items())] = s.value
    return found


def labels(**kw: str) -> Labels:
    return frozenset(kw.items())


SCOPE = {"model": "llama3", "provider": "ollama", "node": LOCAL}


def test_requests_are_counted_by_model_provider_node_and_status() -> None:
    m = Metrics()
    m.observe(rec())
    m.observe(rec())
    m.observe(rec(status=404, model="nope", provider=None, error="model not found"))
    m.observe(rec(target_node="bob"))
    assert samples(m, "gate_requests_total") == {
        labels(**SCOPE, status="200"): 2.0,
        labels(model="nope", provider="", node=LOCAL, status="404"): 1.0,
        labels(**{**SCOPE, "node": "bob"}, status="200"): 1.0,
    }


def test_duration_histogram_counts_and_buckets() -> None:
    m = Metrics()
    for ms in (0.5, 5.0, 200.0, 200_000.0):  # the last is past the top bucket
        m.observe(rec(latency_ms=ms))
    scope = labels(**SCOPE)
    assert samples(m, "gate_request_duration_seconds_count") == {scope: 4.0}
    (total,) = samples(m, "gate_request_duration_seconds_sum").values()
    assert total == pytest.approx(200.2055)
    buckets = {
        dict(k)["le"]: v for k, v in samples(m, "gate_request_duration_seconds_bucket").items()
    }
    assert buckets["0.001"] == 1.0
    assert buckets["0.005"] == 2.0
    assert buckets["0.25"] == 3.0
    assert buckets["120.0"] == 3.0
    assert buckets["+Inf"] == 4.0
    assert min(float(le) for le in buckets) == 0.001


def test_time_to_first_token_only_when_known() -> None:
    m = Metrics()
    m.observe(rec(ttft_ms=30.0))
    m.observe(rec(ttft_ms=None))
    assert samples(m, "gate_time_to_first_token_seconds_count") == {labels(**SCOPE): 1.0}
    assert samples(m, "gate_time_to_first_token_seconds_sum") == {
        labels(**SCOPE): pytest.approx(0.03)
    }


def test_tokens_are_counted_by_kind() -> None:
    m = Metrics()
    m.observe(rec(prompt_tokens=10, completion_tokens=32))
    m.observe(rec(prompt_tokens=5, completion_tokens=None))
    m.observe(rec(prompt_tokens=None, completion_tokens=None))
    assert samples(m, "gate_tokens_total") == {
        labels(**SCOPE, kind="prompt"): 15.0,
        labels(**SCOPE, kind="completion"): 32.0,
    }


def test_errors_are_counted_by_a_bounded_reason() -> None:
    m = Metrics()
    m.observe(rec())  # no error
    m.observe(rec(status=404, error="model 'x' not found"))
    m.observe(rec(status=502, error="connection refused"))
    m.observe(rec(status=502, error="connection reset"))
    m.observe(rec(status=418, error="teapot"))
    m.observe(rec(status=507, error="full"))
    m.observe(rec(status=200, stream=True, error="upstream closed mid-stream"))
    assert samples(m, "gate_request_errors_total") == {
        labels(**SCOPE, reason="not_found"): 1.0,
        labels(**SCOPE, reason="bad_gateway"): 2.0,
        labels(**SCOPE, reason="client_error"): 1.0,
        labels(**SCOPE, reason="server_error"): 1.0,
        labels(**SCOPE, reason="stream_error"): 1.0,
    }


def test_in_flight_gauge_and_build_info() -> None:
    m = Metrics(version="9.9.9")
    m.in_flight(+1)
    m.in_flight(+1)
    m.in_flight(-1)
    assert samples(m, "gate_requests_in_flight") == {frozenset(): 1.0}
    assert samples(m, "gate_build_info") == {labels(version="9.9.9"): 1.0}
    assert samples(Metrics(), "gate_build_info") == {labels(version=__version__): 1.0}


def test_label_values_are_capped_per_label() -> None:
    m = Metrics(label_cap=3)
    for i in range(10):
        m.observe(rec(model=f"m{i}"))
    m.observe(rec(model="m1"))  # a value seen before the cap keeps its own series
    m.observe(rec(model="x" * 1000))
    by_model = {dict(k)["model"]: v for k, v in samples(m, "gate_requests_total").items()}
    assert by_model == {"m0": 1.0, "m1": 2.0, "m2": 1.0, OTHER: 8.0}
    # The cap is per label: providers have their own budget.
    m.observe(rec(model="m0", provider="p2"))
    providers = {dict(k)["provider"] for k in samples(m, "gate_requests_total")}
    assert providers == {"ollama", "p2"}


def test_long_label_values_are_cut() -> None:
    m = Metrics()
    m.observe(rec(model="x" * 1000))
    m.observe(rec(model="x" * 500))  # the same after the cut: one series
    (key,) = samples(m, "gate_requests_total")
    assert dict(key)["model"] == "x" * 128


def test_render_negotiates_the_format() -> None:
    m = Metrics()
    m.observe(rec())
    body, content_type = m.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE gate_requests_total counter" in body

    om_body, om_type = m.render("application/openmetrics-text; version=1.0.0, text/plain;q=0.5")
    assert om_type.startswith("application/openmetrics-text; version=1.0.0")
    assert om_body.endswith(b"# EOF\n")
    families = {f.name: f for f in parse_openmetrics(om_body.decode())}
    assert families["gate_requests"].type == "counter"
    assert families["gate_request_duration_seconds"].type == "histogram"


def test_registries_are_private() -> None:
    a, b = Metrics(), Metrics()
    a.observe(rec())
    assert samples(b, "gate_requests_total") == {}
    assert REGISTRY.get_sample_value("gate_requests_total", {**SCOPE, "status": "200"}) is None
