"""The card stage alone: where a micro-batch's time goes, with ~10k cards in state.

Prints figures, asserts nothing. Needs a running platform (Kafka; MinIO for s3a://).

For each variant (checkpoint on file:// or s3a://, N card buckets) it:

1. fills a scratch topic with one transaction for each of --cards cards and lets the
   first micro-batch load them into state (its time is printed: the cold start);
2. then --batches times: produces --batch-size transactions of random known cards,
   waits for the micro-batch that reads them, and records Spark's
   StreamingQueryProgress (``durationMs``: addBatch, walCommit, commitOffsets,
   latestOffset, queryPlanning, triggerExecution; ``stateOperators``: commitTimeMs,
   allUpdatesTimeMs, numRowsUpdated, memoryUsedBytes, customMetrics) and the
   ``toPandas()`` the scorer's handler does (the card stage runs inside it).

Each figure is the median over the measured batches; ``vs_first`` divides each
variant's median batch time by the first variant's, measured in the same run.

Usage: python bench/card_stage.py [--variants s3a:2:1:per-card,s3a:2:1:packed] [--cards 10000]
(a variant is storage:buckets[:shuffle partitions, default 2[:card-state layout, default
packed[:decoded card states a worker keeps, default the scorer's, 0 for none]]]; 0 buckets:
the Kafka read and toPandas without the card stage, the floor of a micro-batch)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from fraudstream.adapters.kafka import create_scratch_topic, delete_topic, producer_config
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.schema.tables import wire_records
from fraudstream.settings import Settings, SparkSettings, load_settings

START = datetime(2026, 3, 2, tzinfo=UTC)


def _templates(n: int = 2000) -> list[dict[str, Any]]:
    data = generate(GeneratorConfig(seed=5, start=START, days=3, customers=500, merchants=300))
    out = []
    for _, _, value in wire_records(data.transactions, "transaction"):
        out.append(json.loads(value))
        if len(out) >= n:
            break
    return out


def _produce(settings: Settings, topic: str, cards: list[str], pool: list[dict[str, Any]]) -> None:
    """One live transaction per entry of ``cards`` (stamped now, keyed by card)."""
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 5}))
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for i, card in enumerate(cards):
        record = {
            **pool[i % len(pool)],
            "card_id": card,
            "transaction_id": f"cs{uuid.uuid4().hex[:16]}",
            "event_time": now,
        }
        producer.produce(topic, json.dumps(record).encode(), card.encode())
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _source_only(spark: Any, settings: Settings, topic: str) -> Any:
    """The same Kafka read without the card stage: the floor of a micro-batch here."""
    from fraudstream.scoring.stream import kafka_options

    reader = spark.readStream.format("kafka").options(**kafka_options(settings.kafka))
    return reader.option("subscribe", topic).option("startingOffsets", "earliest").load()


def run_variant(
    settings: Settings,
    spark: Any,
    variant: tuple[str, int, int, str, int],
    args: Any,
    pool: list[Any],
) -> dict[str, Any]:
    from fraudstream.adapters.spark import checkpoint_conf
    from fraudstream.scoring.stream import StreamOptions, stage_frame

    storage, buckets, partitions, layout, decoded_cards = variant
    # Read when the query first starts, then fixed by its checkpoint.
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    topic = create_scratch_topic(settings.kafka, "bench-cards")
    tmp = None
    if storage == "file":
        tmp = tempfile.mkdtemp(prefix="card-stage-")
        checkpoint = f"file://{tmp}"
    else:
        checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/bench/cards-{uuid.uuid4().hex[:8]}"
    # As the scorer: the rename-free checkpoint file manager on s3a:// (unless --rename).
    manager = "spark.sql.streaming.checkpointFileManagerClass"
    spark.conf.unset(manager)
    for key, value in ({} if args.rename else checkpoint_conf(checkpoint)).items():
        spark.conf.set(key, value)
    cards = [f"card-{i:06d}" for i in range(args.cards)]
    _produce(settings, topic, cards, pool)
    options = StreamOptions(
        source_topic=topic,
        checkpoint=checkpoint,
        parquet_uri=None,
        buckets=buckets,
        bucket_spread=partitions,  # a new checkpoint each run, as the scorer's check_spread
        trigger_s=args.trigger,
        card_state=layout,
        decoded_cards=decoded_cards,
    )
    collect_ms: dict[int, float] = {}

    def handler(frame: Any, batch_id: int) -> None:
        started = time.perf_counter()
        frame.toPandas()
        collect_ms[batch_id] = (time.perf_counter() - started) * 1000

    query = (
        (stage_frame(spark, settings, options) if buckets else _source_only(spark, settings, topic))
        .writeStream.queryName(f"card-stage-{storage}-{buckets}-{partitions}-{layout}")
        .option("checkpointLocation", f"{checkpoint}/spark")
        .trigger(processingTime=f"{args.trigger} seconds")
        .foreachBatch(handler)
        .start()
    )
    seen: dict[int, dict[str, Any]] = {}

    def wait_for_rows(deadline_s: float) -> dict[str, Any]:
        """The next progress (not seen before) that read rows."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if query.exception() is not None:
                raise RuntimeError(str(query.exception()))
            for p in query.recentProgress:
                progress = json.loads(p.json)
                batch = progress["batchId"]
                if batch not in seen:
                    seen[batch] = progress
                    if progress.get("numInputRows", 0) > 0:
                        return progress
            time.sleep(0.1)
        raise TimeoutError("no micro-batch with rows in time")

    try:
        first = wait_for_rows(600)
        rng = random.Random(7)  # noqa: S311 (which cards, not a secret)
        measured = []
        for _ in range(args.batches):
            _produce(settings, topic, rng.sample(cards, args.batch_size), pool)
            measured.append(wait_for_rows(120))
    finally:
        query.stop()
        delete_topic(settings.kafka, topic)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    durations: dict[str, list[float]] = {}
    state: dict[str, list[float]] = {}
    for p in measured:
        for k, v in p["durationMs"].items():
            durations.setdefault(k, []).append(float(v))
        op = p["stateOperators"][0] if p["stateOperators"] else {}
        for k in ("commitTimeMs", "allUpdatesTimeMs", "numRowsUpdated", "memoryUsedBytes",
                  "numRowsTotal"):  # fmt: skip
            state.setdefault(k, []).append(float(op.get(k, 0)))
        for k, v in (op.get("customMetrics") or {}).items():
            if v:
                state.setdefault(k, []).append(float(v))
        durations.setdefault("toPandas", []).append(collect_ms.get(p["batchId"], 0.0))
    return {
        "storage": storage,
        "buckets": buckets,
        "shuffle_partitions": partitions,
        "card_state": layout,
        "decoded_cards": decoded_cards,
        "checkpoint_manager": spark.conf.get(manager, "Spark's default"),
        "cards": args.cards,
        "batch_size": args.batch_size,
        "first_batch_ms": first["durationMs"].get("triggerExecution"),
        "median_ms": {k: _median(v) for k, v in sorted(durations.items())},
        "state_median": {k: _median(v) for k, v in sorted(state.items())},
        "rows_per_batch": _median([float(p["numInputRows"]) for p in measured]),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="s3a:2:1:per-card,s3a:2:1:packed",
        help="storage:buckets[:shuffle partitions[:card-state layout[:decoded cards]]], "
        "comma-separated (storage: file or s3a; layout: per-card or packed)",
    )
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--trigger", type=float, default=0.2)
    parser.add_argument(
        "--rename",
        action="store_true",
        help="On s3a://, Spark's default checkpoint file manager (temporary file + rename).",
    )
    args = parser.parse_args()
    from fraudstream.adapters.spark import build_session
    from fraudstream.platform.spark_jars import spark_jars
    from fraudstream.scoring.cards import DECODED_CARDS_CAPACITY

    settings = load_settings()
    pool = _templates()
    spark = build_session(
        settings, SparkSettings(), "bench-card-stage", spark_jars(settings.platform.cache_dir)
    )
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}}))
    baseline = None
    try:
        for variant in args.variants.split(","):
            storage, buckets, *rest = variant.split(":")
            shape = (
                storage,
                int(buckets),
                int(rest[0]) if rest else 2,
                rest[1] if len(rest) > 1 else "packed",
                int(rest[2]) if len(rest) > 2 else DECODED_CARDS_CAPACITY,
            )
            figures = run_variant(settings, spark, shape, args, pool)
            total = figures["median_ms"].get("triggerExecution") or 0.0
            baseline = baseline or total
            figures["vs_first"] = round(total / baseline, 2) if baseline else None
            print(json.dumps({"card_stage": figures}), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
