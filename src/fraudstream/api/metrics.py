"""Prometheus metrics of the API (names shared with the Grafana dashboards and alert rules).

Each app has its own registry, so several apps in one process (tests) do not clash.
Drift values are read from Postgres at scrape time (latest ``monitoring_metrics``
row per metric), so Prometheus sees what the monitoring DAG last wrote.

With several worker processes (``api.server``), prometheus-client's multi-process mode
is on in every worker: each writes its values to files in one directory, and a scrape,
whichever worker answers it, sums every worker's (``multiprocess_dir``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("fraudstream.api")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ApiMetrics:
    def __init__(
        self,
        drift_source: Callable[[], list[dict[str, Any]]],
        multiprocess_dir: Path | None = None,
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraudstream_api_requests",
            "API requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "fraudstream_api_request_duration_seconds",
            "API request duration by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.score_duration = Histogram(
            "fraudstream_api_score_duration_seconds",
            "POST /score: state read, wait for a turn, features and model, without HTTP.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verdicts = Counter(
            "fraudstream_api_verdicts",
            "Analyst verdicts by outcome (confirmed, rejected) and whether they changed anything.",
            ["verdict", "changed"],
            registry=self.registry,
        )
        self.shed = Counter(
            "fraudstream_api_requests_shed",
            "Requests refused with 503 because the worker was at its in-flight limit.",
            registry=self.registry,
        )
        self._drift = _DriftCollector(drift_source)
        self.registry.register(self._drift)

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or all workers' summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        registry.register(self._drift)
        return generate_latest(registry)


class MetricsMiddleware:
    """Counts and times every admitted request by route template (pure ASGI).

    The route is known once the router has matched (``scope["route"]``); the live
    alert stream is counted but not timed (its duration is the connection's).
    """

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            if route != "/alerts/stream":
                self.metrics.duration.labels(route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()


class _DriftCollector(Collector):
    def __init__(self, source: Callable[[], list[dict[str, Any]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "fraudstream_drift_psi", "Latest PSI of each monitored metric.", labels=["metric"]
        )
        breached = GaugeMetricFamily(
            "fraudstream_drift_breached",
            "1 when the latest value of the metric breached its threshold.",
            labels=["metric"],
        )
        try:
            rows = self.source()
        except Exception as exc:  # a scrape must not fail because Postgres is away
            log.warning("drift metrics unavailable: %s", exc)
            rows = []
        for row in rows:
            if row["value"] is not None:
                psi.add_metric([row["metric"]], float(row["value"]))
            breached.add_metric([row["metric"]], 1.0 if row["breached"] else 0.0)
        yield psi
        yield breached
