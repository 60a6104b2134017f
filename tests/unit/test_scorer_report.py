"""The scorer's run report keeps bounded memory however long the scorer runs.

``BatchHandler._account`` is what the driver runs after every micro-batch: it reads the
scoring tasks' counts from the accumulator and adds them to the metrics and the report.
Here it is driven directly, batch after batch, with the counts a real scoring task makes
(``batch_counts``), in an accumulator held by this process: no Spark session is needed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import numpy as np
import pandas as pd
from pyspark.accumulators import Accumulator

from fraudstream.adapters.scorer_metrics import ScorerMetrics
from fraudstream.scoring.score_stage import batch_counts
from fraudstream.scoring.stream import BatchHandler, CountsParam

PERCENTILES_PER_BATCH = 99
KEPT = 10_000


def _scored(rows: int, latency_ms: int) -> pd.DataFrame:
    """A scoring task's output columns the counts read, every row ``latency_ms`` late."""
    ingest = np.arange(rows, dtype=np.int64) * 1_000
    return pd.DataFrame(
        {
            "ingest_time_us": ingest,
            "scored_at_us": ingest + latency_ms * 1_000,
            "is_alert": np.arange(rows) % 50 == 0,
            "late_event": np.zeros(rows, dtype=bool),
            "outcome": np.where(np.arange(rows) % 50 == 0, "review", "approve"),
            "fired_rules": [["burst", "travel"] if i % 10 == 0 else None for i in range(rows)],
        }
    )


def _handler() -> tuple[BatchHandler, Accumulator[Counter[Any]]]:
    # _account reads only the accumulator, the metrics and the report; the other fields
    # (Spark stages, models, sinks) belong to running a batch, not to accounting for it.
    unused = cast(Any, None)
    handler = BatchHandler(unused, unused, unused, None, [], ScorerMetrics())
    counts: Accumulator[Counter[Any]] = Accumulator(-1, Counter(), CountsParam())
    handler._counts = counts
    return handler, counts


def test_the_reports_latencies_stay_bounded_over_many_batches() -> None:
    handler, counts = _handler()
    batches = 3 * KEPT // PERCENTILES_PER_BATCH  # three times what the report keeps
    lengths = []
    for batch in range(batches):
        counts.add(batch_counts(_scored(20, latency_ms=10 + batch % 7 * 10), pd.Series([])))
        handler._account("1")
        lengths.append(len(handler.report.latencies))
    report = handler.report
    assert report.batches == batches
    assert report.scored == 20 * batches  # every batch was counted in full
    assert max(lengths) <= KEPT
    assert lengths[-1] == lengths[len(lengths) // 2]  # full, no longer growing
    # What is kept is the newest: the last batch's 99 percentiles end the list.
    last = (10 + (batches - 1) % 7 * 10) / 1000
    assert report.latencies[-PERCENTILES_PER_BATCH:] == [last] * PERCENTILES_PER_BATCH
    # The handler's running totals grow with distinct latency steps, not with batches.
    assert len(handler._counted) < 50


def test_decisions_and_rule_hits_reach_the_metrics() -> None:
    handler, counts = _handler()
    for _ in range(3):
        counts.add(batch_counts(_scored(100, latency_ms=20), pd.Series([])))
        handler._account("1")
    registry = handler.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("fraudstream_decisions_total", outcome="review") == 3 * 2
    assert value("fraudstream_decisions_total", outcome="approve") == 3 * 98
    assert value("fraudstream_decisions_total", outcome="decline") is None
    assert value("fraudstream_rule_hits_total", rule="burst") == 3 * 10
    assert value("fraudstream_rule_hits_total", rule="travel") == 3 * 10
