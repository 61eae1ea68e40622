"""Prometheus metrics for the API: a private registry fed one RequestRecord at a time."""

from __future__ import annotations

__all__ = ("LABEL_CAP", "LOCAL", "OTHER", "Metrics")

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

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


class _Series:
    """The children of every metric for one (model, provider, node).

    prometheus_client's ``labels()`` costs a lock and a tuple of strings per call; looking
    the children up once per label set keeps ``observe`` to a few dict hits.
    """

    __slots__ = ("by_reason", "by_status", "completion", "duration", "labels", "prompt", "ttft")

    def __init__(self, m: Metrics, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.duration = m._duration.labels(*labels)
        self.ttft = m._ttft.labels(*labels)
        self.prompt = m._tokens.labels(*labels, "prompt")
        self.completion = m._tokens.labels(*labels, "completion")
        self.by_status: dict[int, Counter] = {}
        self.by_reason: dict[str, Counter] = {}


class Metrics:
    """Owns the node's Prometheus registry and the API's request metrics."""

    def __init__(self, *, version: str = __version__, label_cap: int = LABEL_CAP) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        scope = ("model", "provider", "node")
        self._requests = Counter(
            "gate_requests", "API requests by HTTP status.", (*scope, "status"), registry=reg
        )
        self._errors = Counter(
            "gate_request_errors",
            "API requests that failed (non-2xx or an error mid-stream), by reason.",
            (*scope, "reason"),
            registry=reg,
        )
        self._duration = Histogram(
            "gate_request_duration_seconds",
            "Time from request to the last byte of the response.",
            scope,
            buckets=_BUCKETS,
            registry=reg,
        )
        self._ttft = Histogram(
            "gate_time_to_first_token_seconds",
            "Time from request to the first byte of the response body.",
            scope,
            buckets=_BUCKETS,
            registry=reg,
        )
        self._tokens = Counter(
            "gate_tokens", "Tokens reported in usage.", (*scope, "kind"), registry=reg
        )
        self._in_flight = Gauge(
            "gate_requests_in_flight", "API requests being served now.", registry=reg
        )
        Gauge("gate_build_info", "Gate version; always 1.", ("version",), registry=reg).labels(
            version
        ).set(1)
        # RSS, CPU and fds of this process (a no-op where /proc is missing).
        ProcessCollector(registry=reg)
        self._model = _Capped(label_cap)
        self._provider = _Capped(label_cap)
        self._node = _Capped(label_cap)
        self._series: dict[tuple[str, str, str], _Series] = {}

    def observe(self, rec: RequestRecord) -> None:
        """Count one finished request. Cheap enough to call per request on the event loop."""
        key = (
            self._model(rec.model or ""),
            self._provider(rec.provider or ""),
            self._node(rec.target_node or LOCAL),
        )
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, key)
        counter = series.by_status.get(rec.status)
        if counter is None:
            counter = series.by_status[rec.status] = self._requests.labels(*key, str(rec.status))
        counter.inc()
        series.duration.observe(rec.latency_ms / 1000)
        if rec.ttft_ms is not None:
            series.ttft.observe(rec.ttft_ms / 1000)
        if rec.prompt_tokens:
            series.prompt.inc(rec.prompt_tokens)
        if rec.completion_tokens:
            series.completion.inc(rec.completion_tokens)
        if rec.status >= 400 or rec.error is not None:
            reason = _reason(rec.status)
            err = series.by_reason.get(reason)
            if err is None:
                err = series.by_reason[reason] = self._errors.labels(*key, reason)
            err.inc()

    def in_flight(self, delta: int) -> None:
        """Move the in-flight gauge: +1 when a request starts, -1 when it ends."""
        self._in_flight.inc(delta)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from an ``Accept`` header.

        Without one this is the classic text format (``version=0.0.4``) every scraper reads.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
