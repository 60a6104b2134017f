"""Dropping day partitions while the scorer's PostgreSQL sink writes: how long, and whether
the writes wait.

In a fresh scratch database, ``--days`` past days are filled with ``--rows-per-day`` scored
rows each (the scorer's write path). Then a writer thread flushes batches of ``--batch``
rows into today's partitions as fast as it can (``PostgresSink``, one transaction per
batch, as a scorer partition does) while the main thread waits ``--settle`` seconds and
drops the past days one by one (``adapters.partitions.drop_before``: DETACH CONCURRENTLY,
DROP). Prints each drop's time and the writer's batch latency (p50, p99, max) while no drop
runs and while drops run; the ratio of the two p99s says whether drops block writes. The
last line is JSON. Needs a PostgreSQL (the platform's, or FRAUDSTREAM_POSTGRES_*).

    .venv/bin/python bench/partition_drop.py [--days 4] [--rows-per-day 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np

from fraudstream.adapters.partitions import drop_before
from fraudstream.adapters.postgres import migrate, scratch_database
from fraudstream.scoring.sinks.base import Partition
from fraudstream.scoring.sinks.postgres import PostgresSink
from fraudstream.settings import PostgresSettings, load_settings
from row_bytes import scored_frame


def _day_frame(template, day: date, tag: str):  # type: ignore[no-untyped-def]
    """The template rows moved to ``day`` (same time of day), with ids of their own."""
    frame = template.copy()
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    base = int(template["event_time_us"].min())
    frame["event_time_us"] = int(first.timestamp() * 1e6) + (frame["event_time_us"] - base) % (
        86_400 * 1_000_000
    )
    frame["transaction_id"] = tag + frame["transaction_id"].astype(str)
    return frame


def _write(pg: PostgresSettings, frame, batch: int) -> list[float]:  # type: ignore[no-untyped-def]
    sink = PostgresSink(pg, "fraud-detector", "transactions")
    took = []
    for start in range(0, len(frame), batch):
        began = time.perf_counter()
        sink.setup()
        sink.write(Partition(scored=frame.iloc[start : start + batch].reset_index(drop=True)))
        sink.flush()
        took.append(time.perf_counter() - began)
    return took


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "batches": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else float("nan"),
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else float("nan"),
        "max_ms": round(float(ms.max()), 1) if len(ms) else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=3000)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    settings = load_settings()
    template = scored_frame(customers=max(300, args.rows_per_day // 2), days=1.0)
    template = template.iloc[: args.rows_per_day].reset_index(drop=True)
    today = datetime.now(UTC).date()
    with scratch_database(settings.postgres, "bench") as pg:
        migrate(pg)
        for back in range(1, args.days + 1):
            _write(pg, _day_frame(template, today - timedelta(days=back), f"d{back}-"), 5000)
        stop = threading.Event()
        dropping = threading.Event()
        latencies: dict[bool, list[float]] = {False: [], True: []}

        def writer() -> None:
            sink = PostgresSink(pg, "fraud-detector", "transactions")
            round_ = 0
            while not stop.is_set():
                frame = _day_frame(template.head(args.batch), today, f"w{round_}-")
                began = time.perf_counter()
                during = dropping.is_set()
                sink.setup()
                sink.write(Partition(scored=frame))
                sink.flush()
                latencies[during or dropping.is_set()].append(time.perf_counter() - began)
                round_ += 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(args.settle)
        drops = []
        dropping.set()
        for back in range(args.days, 0, -1):
            cutoff = today - timedelta(days=back - 1)
            for table in ("transactions_raw", "transactions_with_score", "fraud_alerts"):
                drops += drop_before(pg, table, cutoff, back)
        dropping.clear()
        time.sleep(args.settle)
        stop.set()
        thread.join()
    for d in drops:
        print(f"dropped {d.partition:<36} {d.bytes / 1e6:>8.1f} MB in {d.duration_ms:>7.1f} ms")
    quiet, busy = _summary(latencies[False]), _summary(latencies[True])
    print(f"writer batches of {args.batch} rows without drops: {quiet}")
    print(f"writer batches of {args.batch} rows during drops:  {busy}")
    times = [d.duration_ms for d in drops]
    doc = {
        "bench": "partition_drop",
        "drops": len(drops),
        "drop_ms_median": round(statistics.median(times), 1),
        "drop_ms_max": round(max(times), 1),
        "mb_per_dropped_partition": round(statistics.mean(d.bytes for d in drops) / 1e6, 1),
        "writer_quiet": quiet,
        "writer_during_drops": busy,
        "p99_ratio_during_vs_quiet": round(busy["p99_ms"] / quiet["p99_ms"], 2),
    }
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
