"""Prometheus metrics of one server (their own registry, so several servers can share a process)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServeMetrics:
    """Requests by endpoint and status, request latency, rows per pass, queue time and pass time.

    >>> metrics = ServeMetrics()
    >>> metrics.on_pass("score", rows=96, queue_seconds=[0.004, 0.002], seconds=0.05)
    >>> print(metrics.render().decode())  # Prometheus text format, as GET /metrics serves it  # doctest: +ELLIPSIS
    # HELP ...
    softprompt_pass_rows_count{kind="score"} 1.0
    ...
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "softprompt_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "softprompt_request_latency_seconds",
            "time from request to response",
            ["endpoint"],
            buckets=TIME_BUCKETS,
            registry=self.registry,
        )
        self.pass_rows = Histogram(
            "softprompt_pass_rows",
            "rows (inputs × prompts) per model pass",
            ["kind"],
            buckets=ROW_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "softprompt_queue_seconds",
            "time a request waited for its first pass",
            ["kind"],
            buckets=TIME_BUCKETS,
            registry=self.registry,
        )
        self.pass_time = Histogram(
            "softprompt_pass_seconds", "time of one model pass", ["kind"], buckets=TIME_BUCKETS, registry=self.registry
        )

    def on_pass(self, kind: str, rows: int, queue_seconds: Sequence[float], seconds: float) -> None:
        """Record one worker pass (``PassObserver``)."""
        self.pass_rows.labels(kind).observe(rows)
        self.pass_time.labels(kind).observe(seconds)
        for waited in queue_seconds:
            self.queue_time.labels(kind).observe(waited)

    def on_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one answered HTTP request."""
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return generate_latest(self.registry)
