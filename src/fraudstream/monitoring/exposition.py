"""Monitoring results as Prometheus metrics (text exposition format).

``fraudstream monitor --metrics-file`` writes them where node-exporter's textfile collector
(or any file-based scrape) picks them up; the API can serve the same text on ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from fraudstream.monitoring.run import MonitorRun


def render(runs: Iterable[MonitorRun]) -> str:
    """``fraudstream_monitoring_value`` and ``_breached`` per model and metric, and the window
    end as ``fraudstream_monitoring_window_end_seconds`` (to alert on a stale monitor)."""
    registry = CollectorRegistry()
    labels = ["model", "version", "metric"]
    value = Gauge(
        "fraudstream_monitoring_value",
        "Latest value of a monitoring metric (PSI, alert rate, AP, CP@100).",
        labels,
        registry=registry,
    )
    breached = Gauge(
        "fraudstream_monitoring_breached",
        "1 when the metric crossed its threshold in the latest window.",
        labels,
        registry=registry,
    )
    window_end = Gauge(
        "fraudstream_monitoring_window_end_seconds",
        "End of the latest monitored window (event time, Unix seconds).",
        ["model"],
        registry=registry,
    )
    for run in runs:
        for m in run.metrics:
            key = (run.model_name, run.model_version, m.metric)
            if m.value is not None:
                value.labels(*key).set(m.value)
            breached.labels(*key).set(1.0 if m.breached else 0.0)
        window_end.labels(run.model_name).set(run.window_end.timestamp())
    return generate_latest(registry).decode()
