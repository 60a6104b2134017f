"""The scorer's metrics: fed from Spark's progress JSON, names as the dashboards expect."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import generate_latest

from fraudstream.adapters.scorer_metrics import MetricsPortError, ScorerMetrics, kafka_lag

PROGRESS = {
    "batchId": 4,
    "numInputRows": 1200,
    "inputRowsPerSecond": 950.5,
    "processedRowsPerSecond": 1100.0,
    "durationMs": {"triggerExecution": 870, "walCommit": 120, "addBatch": 600, "getBatch": 0},
    "stateOperators": [{"allUpdatesTimeMs": 250, "commitTimeMs": 90}],
    "sources": [
        {
            "endOffset": {"transactions": {"0": 100, "1": 250}},
            "latestOffset": {"transactions": {"0": 130, "1": 250}},
        }
    ],
}


def test_lag_is_the_records_between_end_and_latest_offsets() -> None:
    assert kafka_lag(PROGRESS["sources"]) == 30  # type: ignore[arg-type]
    as_strings = [{"endOffset": '{"t": {"0": 5}}', "latestOffset": '{"t": {"0": 9}}'}]
    assert kafka_lag(as_strings) == 4
    assert kafka_lag([]) is None


def test_progress_feeds_rates_duration_and_lag() -> None:
    metrics = ScorerMetrics()
    metrics.observe_progress(PROGRESS)
    text = generate_latest(metrics.registry).decode()
    assert "fraudstream_scorer_input_rows_per_second 950.5" in text
    assert "fraudstream_scorer_processed_rows_per_second 1100.0" in text
    assert "fraudstream_scorer_kafka_lag 30.0" in text
    assert "fraudstream_scorer_batch_duration_seconds_count 1.0" in text


def test_progress_feeds_the_time_of_each_batch_phase() -> None:
    metrics = ScorerMetrics()
    metrics.observe_progress(PROGRESS)
    metrics.observe_progress({**PROGRESS, "numInputRows": 0})  # an empty batch: not counted
    text = generate_latest(metrics.registry).decode()
    for phase, seconds in (
        ("walCommit", 0.12),
        ("addBatch", 0.6),
        ("state_update", 0.25),
        ("state_commit", 0.09),
    ):
        assert f'fraudstream_scorer_batch_phase_seconds_sum{{phase="{phase}"}} {seconds}' in text
        assert f'fraudstream_scorer_batch_phase_seconds_count{{phase="{phase}"}} 1.0' in text
    assert 'phase="getBatch"' not in text  # only the phases worth a series


def test_model_info_keeps_one_version_per_role() -> None:
    metrics = ScorerMetrics()
    metrics.set_model("champion", "3", "1")
    metrics.set_model("challenger", "4", "1")
    metrics.set_model("champion", "5", "1")
    text = generate_latest(metrics.registry).decode()
    assert 'fraudstream_model_info{feature_set_version="1",role="champion",version="5"} 1.0' in text
    assert 'version="3"' not in text
    assert 'role="challenger",version="4"' in text


def test_a_taken_port_is_one_error_that_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortError, match=f"port {port} is already in use") as caught:
            ScorerMetrics().serve(port, host="127.0.0.1")
    assert "FRAUDSTREAM_SCORER_METRICS_PORT" in str(caught.value)


def test_latencies_counted_per_bucket_show_as_a_histogram() -> None:
    """Spark hands each batch's latencies over as counts per bucket; /metrics shows the
    cumulative series a histogram of the same values would."""
    metrics = ScorerMetrics()
    bounds = metrics.latency.buckets
    values = [0.04, 0.3, 0.3, 2.5, 45.0, 100.0]
    for batch in (values[:3], values[3:]):
        metrics.latency.add([sum(v <= b for v in batch) for b in bounds], len(batch), sum(batch))
    text = generate_latest(metrics.registry).decode()
    name = "fraudstream_scoring_latency_seconds"
    assert f'{name}_bucket{{le="0.05"}} 1.0' in text
    assert f'{name}_bucket{{le="0.5"}} 3.0' in text
    assert f'{name}_bucket{{le="3.0"}} 4.0' in text
    assert f'{name}_bucket{{le="60.0"}} 5.0' in text
    assert f'{name}_bucket{{le="+Inf"}} 6.0' in text
    assert f"{name}_count 6.0" in text
    assert f"{name}_sum {sum(values)}" in text
