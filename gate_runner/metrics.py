"""Prometheus metrics for the API: a private registry fed one RequestRecord at a time."""

from __future__ import annotations

__all__ = ("LABEL_CAP", "LOCAL", "OTHER", "Metrics")

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, Metric, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from gate_runner import __version__
from gate_runner.state.requests import RequestRecord

# Model names come from clients, and every distinct value is a time series that Prometheus
# and this process keep forever. Past LABEL_CAP distinct values of one label, new values
# are reported as OTHER; long values are cut first so a single label stays small too.
LABEL_CAP = 200
OTHER = "other"
_MAX_LABEL_LEN = 128
LOCAL = "local"  # the node label of requests served by this node

# 1 ms (a cached embedding on loopback) to 120 s (a long generation on a slow peer).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_LE = (*(repr(float(b)) for b in _BUCKETS), "+Inf")  # the le labels, as Prometheus writes them

# status -> reason: a short, fixed vocabulary, since the error text itself is unbounded.
_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "timeout",
    413: "too_large",
    429: "rate_limited",
    499: "client_closed",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "upstream_timeout",
}


def _reason(status: int) -> str:
    if status < 400:
        # Only reached with an error set: a stream that started with 200 and then failed.
        return "stream_error"
    return _REASONS.get(status) or ("server_error" if status >= 500 else "client_error")


class _Capped:
    """The values seen so far for one label, up to the cap."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        value = value[:_MAX_LABEL_LEN]
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return OTHER
        self.seen.add(value)
        return value


class _Histogram:
    """Bucket counts (the last is +Inf) and their sum; cumulated only when scraped."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are upper bounds, inclusive: bisect_left finds the first >= value.
        self.counts[bisect_left(_BUCKETS, value)] += 1
        self.total += value


class _Series:
    """Every figure kept for one (model, provider, node): plain numbers in dicts, updated
    on the event loop thread without locks, and turned into metric families on a scrape.
    prometheus_client's own metric objects take a lock per update, which cost the API
    more than every other figure of the request record together."""

    __slots__ = ("by_reason", "by_status", "completion", "duration", "prompt", "ttft")

    def __init__(self) -> None:
        self.duration = _Histogram()
        self.ttft = _Histogram()
        self.prompt = 0
        self.completion = 0
        self.by_status: dict[int, int] = {}
        self.by_reason: dict[str, int] = {}


class _RequestCollector(Collector):
    """Reads a Metrics' series for the registry, at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # unchecked: the names are fixed and registered once

    def collect(self) -> Iterable[Metric]:
        scope = ["model", "provider", "node"]
        requests = CounterMetricFamily(
            "gate_requests", "API requests by HTTP status.", labels=[*scope, "status"]
        )
        errors = CounterMetricFamily(
            "gate_request_errors",
            "API requests that failed (non-2xx or an error mid-stream), by reason.",
            labels=[*scope, "reason"],
        )
        duration = HistogramMetricFamily(
            "gate_request_duration_seconds",
            "Time from request to the last byte of the response.",
            labels=scope,
        )
        ttft = HistogramMetricFamily(
            "gate_time_to_first_token_seconds",
            "Time from request to the first byte of the response body.",
            labels=scope,
        )
        tokens = CounterMetricFamily(
            "gate_tokens", "Tokens reported in usage.", labels=[*scope, "kind"]
        )
        # A snapshot: a scrape from another thread must not see a dict change under it.
        for key, series in list(self._metrics._series.items()):
            labels = list(key)
            for status, count in list(series.by_status.items()):
                requests.add_metric([*labels, str(status)], count)
            for reason, count in list(series.by_reason.items()):
                errors.add_metric([*labels, reason], count)
            for family, hist in ((duration, series.duration), (ttft, series.ttft)):
                family.add_metric(labels, _cumulative(list(hist.counts)), hist.total)
            tokens.add_metric([*labels, "prompt"], series.prompt)
            tokens.add_metric([*labels, "completion"], series.completion)
        in_flight = GaugeMetricFamily(
            "gate_requests_in_flight",
            "API requests being served now.",
            value=self._metrics._in_flight,
        )
        return [requests, errors, duration, ttft, tokens, in_flight]


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    running = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(_LE, counts, strict=True):
        running += count
        buckets.append((bound, running))
    return buckets


class Metrics:
    """Owns the node's Prometheus registry and the API's request metrics."""

    def __init__(self, *, version: str = __version__, label_cap: int = LABEL_CAP) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._in_flight = 0
        self._series: dict[tuple[str, str, str], _Series] = {}
        reg.register(_RequestCollector(self))
        Gauge("gate_build_info", "Gate version; always 1.", ("version",), registry=reg).labels(
            version
        ).set(1)
        # RSS, CPU and fds of this process (a no-op where /proc is missing).
        ProcessCollector(registry=reg)
        self._model = _Capped(label_cap)
        self._provider = _Capped(label_cap)
        self._node = _Capped(label_cap)
        # The series of each (model, provider, node) as the record has them, so that the
        # usual request skips the label caps. Bounded: the raw values come from clients.
        self._by_raw: dict[tuple[str | None, str | None, str | None], _Series] = {}
        self._raw_cap = 4 * label_cap

    def _series_for(self, raw: tuple[str | None, str | None, str | None]) -> _Series:
        model, provider, node = raw
        key = (self._model(model or ""), self._provider(provider or ""), self._node(node or LOCAL))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        if len(self._by_raw) < self._raw_cap:
            self._by_raw[raw] = series
        return series

    def observe(self, rec: RequestRecord) -> None:
        """Count one finished request. Cheap enough to call per request on the event loop."""
        raw = (rec.model, rec.provider, rec.target_node)
        series = self._by_raw.get(raw)
        if series is None:
            series = self._series_for(raw)
        by_status = series.by_status
        by_status[rec.status] = by_status.get(rec.status, 0) + 1
        series.duration.observe(rec.latency_ms / 1000)
        if rec.ttft_ms is not None:
            series.ttft.observe(rec.ttft_ms / 1000)
        if rec.prompt_tokens:
            series.prompt += rec.prompt_tokens
        if rec.completion_tokens:
            series.completion += rec.completion_tokens
        if rec.status >= 400 or rec.error is not None:
            reason = _reason(rec.status)
            series.by_reason[reason] = series.by_reason.get(reason, 0) + 1

    def in_flight(self, delta: int) -> None:
        """Move the in-flight gauge: +1 when a request starts, -1 when it ends."""
        self._in_flight += delta

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from an ``Accept`` header.

        Without one this is the classic text format (``version=0.0.4``) every scraper reads.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
