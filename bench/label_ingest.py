"""Label ingestion throughput: prints figures and ratios, asserts nothing.

`LabelIngest` (consume, validate, upsert into Postgres, commit offsets) on a
scratch topic of generated-shape labels, each run into a freshly migrated
database, against a baseline measured in the same run: consuming the same
records and committing offsets per batch without validation or Postgres (the
Kafka floor). Timed until the last record is read, so the idle wait is
excluded. Needs a running platform (`fraudstream platform up`, or the
FRAUDSTREAM_* settings of another).

Medians of --repeat runs. Usage: python bench/label_ingest.py [--repeat 3] [--labels 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer

from fraudstream.adapters.kafka import (
    consumer_config,
    create_scratch_topic,
    delete_topic,
    producer_config,
)
from fraudstream.adapters.postgres import migrate, scratch_database
from fraudstream.services.ingest import IngestReport, LabelIngest
from fraudstream.settings import Settings, load_settings


def _fill(settings: Settings, topic: str, count: int) -> None:
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 20}))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(count):
        label = {
            "transaction_id": f"bench-{i}",
            "is_fraud": i % 50 == 0,
            "label_time": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": "chargeback" if i % 2 else "analyst",
        }
        while True:
            try:
                producer.produce(topic, json.dumps(label).encode(), label["transaction_id"])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def _ingest_seconds(settings: Settings, topic: str, count: int) -> float:
    with scratch_database(settings.postgres, "bench") as pg:
        migrate(pg)
        ingest = LabelIngest(settings.kafka, pg, f"bench-{uuid.uuid4().hex[:8]}", source=topic)
        done: list[float] = []

        def seen(report: IngestReport) -> None:
            if report.read >= count and not done:
                done.append(time.perf_counter())

        start = time.perf_counter()
        ingest.run(idle_s=2.0, progress=seen)
        return done[0] - start


def _consume_seconds(settings: Settings, topic: str, count: int) -> float:
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
    start = time.perf_counter()
    consumer.subscribe([topic])
    read = 0
    try:
        while read < count:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            read += sum(1 for m in batch if m.error() is None)
            if batch:
                consumer.commit(asynchronous=False)
        return time.perf_counter() - start
    finally:
        consumer.close()


def _median_rate(runs: int, count: int, work: Callable[[], float]) -> float:
    return count / statistics.median(work() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--labels", type=int, default=50_000)
    args = parser.parse_args()
    settings = load_settings()
    topic = create_scratch_topic(settings.kafka, "bench-labels")
    try:
        _fill(settings, topic, args.labels)
        floor = _median_rate(
            args.repeat, args.labels, lambda: _consume_seconds(settings, topic, args.labels)
        )
        ingest = _median_rate(
            args.repeat, args.labels, lambda: _ingest_seconds(settings, topic, args.labels)
        )
    finally:
        delete_topic(settings.kafka, topic)
    print(f"labels: {args.labels:,}, medians of {args.repeat} runs")
    print(f"  consume + commit (baseline): {floor:10,.0f} labels/s")
    print(f"  ingest-labels              : {ingest:10,.0f} labels/s  ({ingest / floor:.2f}x)")


if __name__ == "__main__":
    main()
