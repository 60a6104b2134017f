"""The demo's live view reads its figures from what the pipeline wrote, in the real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fraudstream.adapters.postgres import connect
from fraudstream.demo import LiveView
from fraudstream.settings import Settings

from .conftest import unique

pytestmark = pytest.mark.services("postgres")


def _insert(settings: Settings, rows: list[tuple[str, bool, datetime, datetime]]) -> None:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        for txn_id, alert, ingest, scored in rows:
            cur.execute(
                """INSERT INTO transactions_with_score (transaction_id, event_time, card_id,
                       merchant_id, amount, score, threshold, is_alert, model_name, model_version,
                       feature_set_version, ingest_time, scored_at)
                   VALUES (%s, %s, 'c', 'm', 10, %s, 0.5, %s, 'fraud-detector', '7', 'v1',
                           %s, %s)""",
                (txn_id, ingest, 0.9 if alert else 0.1, alert, ingest, scored),
            )  # fmt: skip


def test_live_view_counts_latency_and_precision_against_the_truth(
    settings: Settings, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    prefix = unique("demo")
    # 10 scored transactions: 4 alerts, of which 3 are true frauds; a fifth fraud was missed.
    # Latencies: 100, 200, ..., 1000 ms.
    rows = []
    for i in range(10):
        ingest = started + timedelta(milliseconds=10 * i)
        rows.append(
            (f"{prefix}-{i}", i < 4, ingest, ingest + timedelta(milliseconds=100 * (i + 1)))
        )
    _insert(settings, rows)
    truth = tmp_path / "truth.jsonl"
    frauds = [f"{prefix}-{i}" for i in (0, 1, 2, 9)]
    truth.write_text("".join(json.dumps({"transaction_id": t}) + "\n" for t in frauds))

    view = LiveView(settings, started, truth)
    figures = view.figures()
    assert figures["scored"] == 10
    assert figures["alerts"] == 4
    assert figures["true_alerts"] == 3
    assert figures["frauds_sent"] == 4
    assert figures["model"] == "7"
    assert figures["p50"] == pytest.approx(0.55, abs=1e-6)
    summary = view.summary()
    assert summary.precision == pytest.approx(0.75)
    assert summary.recall == pytest.approx(0.75)
    assert summary.models == ["7"]
    assert summary.p99_ms == pytest.approx(991.0, abs=1e-3)
    assert summary.warm_p99_ms is None  # nothing scored after the first minute
    # The view renders without touching anything but the database and the truth file.
    assert view.table().row_count == 8


def test_the_summary_gives_the_latency_after_the_first_minute_apart(
    settings: Settings, tmp_path: Path
) -> None:
    # Scored an hour from now, so that no other test's rows fall inside the view's window.
    started = datetime.now(UTC) + timedelta(hours=1)
    prefix = unique("demo-warm")
    rows = []
    for i in range(5):  # the scorer's first seconds: transactions that waited 5 s for it
        scored = started + timedelta(seconds=i)
        rows.append((f"{prefix}-cold-{i}", False, scored - timedelta(seconds=5), scored))
    for i in range(4):  # after the first minute: 200 ms each
        scored = started + timedelta(seconds=90 + i)
        rows.append((f"{prefix}-warm-{i}", False, scored - timedelta(milliseconds=200), scored))
    _insert(settings, rows)
    try:
        summary = LiveView(settings, started, tmp_path / "truth.jsonl").summary()
    finally:
        with connect(settings.postgres) as conn, conn.cursor() as cur:
            cur.execute(
                "DELETE FROM transactions_with_score WHERE transaction_id LIKE %s", (f"{prefix}-%",)
            )
    assert summary.scored == 9
    assert summary.p50_ms == pytest.approx(5000.0, abs=1e-3)
    assert summary.p99_ms == pytest.approx(5000.0, abs=1e-3)
    assert summary.warm_p50_ms == pytest.approx(200.0, abs=1e-3)
    assert summary.warm_p99_ms == pytest.approx(200.0, abs=1e-3)
