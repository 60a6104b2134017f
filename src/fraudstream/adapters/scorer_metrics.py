"""The scorer's Prometheus endpoint (driver side), fed by each micro-batch and Spark's progress.

Metric names are a contract shared with the API, the Grafana dashboards and the
alert rules: do not rename them. Each scorer process registers them in its own
registry, so tests and benchmarks can run several in one interpreter.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
# Spark's durationMs keys worth a series; triggerExecution is the batch itself (above).
SPARK_PHASES = (
    "latestOffset",
    "queryPlanning",
    "walCommit",
    "addBatch",
    "commitOffsets",
)
# The state operators' own times, summed over operators (and partitions, by Spark).
STATE_PHASES = (("state_update", "allUpdatesTimeMs"), ("state_commit", "commitTimeMs"))


class CountedHistogram:
    """A histogram fed with counts per bucket instead of single values.

    The scorer's latencies are measured where the rows are, in Spark: each micro-batch
    hands over how many rows fell at or under each bound (one aggregate, not a value
    per row), and ``/metrics`` shows the same series a ``Histogram`` would.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.buckets = name, documentation, tuple(buckets)
        self._at_or_under = [0] * len(self.buckets)
        self._count, self._sum = 0, 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def add(self, at_or_under: Sequence[int], count: int, total: float) -> None:
        """``at_or_under[i]``: rows of ``count`` at or under ``buckets[i]``; ``total``: sum."""
        with self._lock:
            for i, n in enumerate(at_or_under):
                self._at_or_under[i] += int(n)
            self._count += int(count)
            self._sum += float(total)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            buckets = [(str(b), n) for b, n in zip(self.buckets, self._at_or_under, strict=True)]
            buckets.append(("+Inf", self._count))
            total = self._sum
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


class MetricsPortError(RuntimeError):
    """The endpoint's port is taken, most often by another scorer on the same machine."""


@dataclass
class ScorerMetrics:
    """Every scorer metric, in one registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.input_rate = Gauge(
            "fraudstream_scorer_input_rows_per_second", "Rows/s read by the last batch", registry=r
        )
        self.processed_rate = Gauge(
            "fraudstream_scorer_processed_rows_per_second",
            "Rows/s processed by the last batch",
            registry=r,
        )
        self.batch_duration = Histogram(
            "fraudstream_scorer_batch_duration_seconds",
            "Micro-batch duration (Spark's triggerExecution)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.latency = CountedHistogram(
            "fraudstream_scoring_latency_seconds",
            "Scoring time minus the transaction's Kafka CreateTime",
            LATENCY_BUCKETS,
            r,
        )
        self.scored = Counter("fraudstream_scored_total", "Transactions scored", registry=r)
        self.alerts = Counter("fraudstream_alerts_total", "Alerts raised", registry=r)
        self.dead_letters = Counter(
            "fraudstream_dead_letters_total", "Messages dead-lettered", ["reason"], registry=r
        )
        self.decisions = Counter(
            "fraudstream_decisions_total",
            "Transactions decided, by outcome (approve, review, decline: docs/rules.md)",
            ["outcome"],
            registry=r,
        )
        self.rule_hits = Counter(
            "fraudstream_rule_hits_total",
            "Transactions each rule of the active set fired on, whatever decided",
            ["rule"],
            registry=r,
        )
        self.labels_read = Counter(
            "fraudstream_scorer_labels_total",
            "Labels the merchant stage read, by keys: keyed (with their transaction's merchant "
            "and event time) or keyless (which need links: FRAUDSTREAM_SCORER_LABEL_LINKS)",
            ["keys"],
            registry=r,
        )
        self.late = Counter(
            "fraudstream_scorer_late_events_total",
            "Transactions older than their card's or merchant's latest (scored, not added)",
            registry=r,
        )
        self.restarts = Counter(
            "fraudstream_scorer_restarts",
            "Times the streaming query failed and was restarted from its checkpoint",
            registry=r,
        )
        self.retries = Counter(
            "fraudstream_scorer_batch_retries",
            "Micro-batches run again in place after a dependency was unreachable",
            registry=r,
        )
        self.kafka_lag = Gauge(
            "fraudstream_scorer_kafka_lag", "Records behind the latest offsets", registry=r
        )
        self.model_info = Gauge(
            "fraudstream_model_info",
            "The model being served (value 1)",
            ["version", "feature_set_version", "role"],
            registry=r,
        )
        self.reloads = Counter(
            "fraudstream_model_reloads_total", "Model reload attempts", ["result"], registry=r
        )
        self.phase_seconds = Histogram(
            "fraudstream_scorer_batch_phase_seconds",
            "Spark's time per micro-batch phase (durationMs; state_update and state_commit "
            "from the state operator)",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "fraudstream_scorer_stage_seconds",
            "Time per micro-batch stage: batch (the driver's wait for the stages, the "
            "scoring and the sinks in its tasks); scoring and each sink in the tasks, "
            "summed over the batch's tasks; online_store (its own job)",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 (scraped from pods)
        """Serve ``/metrics`` on a daemon thread; ``MetricsPortError`` if the port is taken."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise MetricsPortError(
                f"port {port} is already in use (another scorer on this machine?): stop it, "
                "or set FRAUDSTREAM_SCORER_METRICS_PORT to a free port"
            ) from None

    def set_model(self, role: str, version: str | None, feature_set_version: str) -> None:
        for metric in self.model_info.collect():
            for sample in metric.samples:
                if sample.labels.get("role") == role:
                    self.model_info.remove(
                        sample.labels["version"], sample.labels["feature_set_version"], role
                    )
        if version is not None:
            self.model_info.labels(version, feature_set_version, role).set(1)

    def observe_progress(self, progress: dict[str, Any]) -> None:
        """Update the rate, duration and lag gauges from one ``StreamingQueryProgress`` (JSON)."""
        self.input_rate.set(float(progress.get("inputRowsPerSecond") or 0.0))
        self.processed_rate.set(float(progress.get("processedRowsPerSecond") or 0.0))
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if duration_ms is not None and progress.get("numInputRows", 0):
            self.batch_duration.observe(duration_ms / 1000)
            durations = progress.get("durationMs") or {}
            for phase in SPARK_PHASES:
                if phase in durations:
                    self.phase_seconds.labels(phase).observe(durations[phase] / 1000)
            operators = progress.get("stateOperators") or []
            for phase, key in STATE_PHASES if operators else ():
                ms = sum(float(op.get(key) or 0) for op in operators)
                self.phase_seconds.labels(phase).observe(ms / 1000)
        lag = kafka_lag(progress.get("sources") or [])
        if lag is not None:
            self.kafka_lag.set(lag)


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def kafka_lag(sources: list[dict[str, Any]]) -> int | None:
    """Records between each source's end offsets and the latest offsets Kafka reported."""
    total, seen = 0, False
    for source in sources:
        latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
        for topic, partitions in latest.items():
            for partition, offset in partitions.items():
                done = end.get(topic, {}).get(partition)
                if done is not None:
                    total += max(0, int(offset) - int(done))
                    seen = True
    return total if seen else None
