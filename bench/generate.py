"""Generator and producer throughput: prints figures and ratios, asserts nothing.

1. Generation to Parquet (`generate` + `write_history`, 30 days, default world),
   pinned to one core, against a baseline measured in the same run: writing the
   same tables to Parquet alone (the I/O floor).
2. Producing into the local cluster with acks=all through `replay` (encode +
   produce), against a baseline in the same run: producing the already-encoded
   bytes with a bare idempotent producer. Needs a running platform
   (`fraudstream platform up`, or the FRAUDSTREAM_KAFKA_* settings of another);
   skipped with a note otherwise.

3. Validation at the stream's entry (`TransactionValidator.validate`, one core)
   against the full JSON Schema validator on the same records (the baseline the
   compiled fast checks replace).

Medians of --repeat runs. Usage: python bench/generate.py [--repeat 3] [--produce 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from fraudstream.adapters.kafka import admin_client, producer_config
from fraudstream.generator import GeneratorConfig, generate, write_history
from fraudstream.schema import json_schema
from fraudstream.schema.tables import wire_records
from fraudstream.services.feed import StreamTopics, replay
from fraudstream.settings import KafkaSettings, load_settings
from fraudstream.validation import ContractValidator, TransactionValidator


def _median_rate(runs: int, rows: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return rows / statistics.median(times)


def bench_generation(repeat: int) -> None:
    config = GeneratorConfig(seed=1, days=30)
    generate(GeneratorConfig(seed=2, days=1, customers=500, merchants=300))  # warm imports
    rows = generate(config).transactions.num_rows
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def full() -> None:
            write_history(generate(config), out)

        data = generate(config)

        def write_only() -> None:
            pq.write_table(data.transactions, out / "t.parquet", compression="zstd")
            pq.write_table(data.labels, out / "l.parquet", compression="zstd")

        rate = _median_rate(repeat, rows, full)
        floor = _median_rate(repeat, rows, write_only)
    print(f"generation to Parquet: {rows:,} tx per run (30 days, 10,000 customers)")
    print(f"  generate + write : {rate:>12,.0f} tx/s   (target >= 100,000 on one core)")
    print(f"  write only       : {floor:>12,.0f} tx/s   (baseline, same tables)")
    print(f"  ratio            : {rate / floor:>12.2f}   (generation speed / Parquet write speed)")


def _topic(settings: KafkaSettings) -> str:
    name = f"bench-generate-{uuid.uuid4().hex[:8]}"
    spec = NewTopic(
        name,
        num_partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        config={"min.insync.replicas": str(settings.min_insync_replicas)},
    )
    admin = admin_client(settings)  # keep the client alive until the future resolves
    admin.create_topics([spec])[name].result(30)
    return name


def bench_produce(count: int, repeat: int) -> None:
    settings = load_settings().kafka
    try:
        admin_client(settings).list_topics(timeout=5)
    except Exception as exc:
        print(f"produce: skipped, no cluster at {settings.bootstrap} ({type(exc).__name__})")
        return
    days = count / 20_000
    table = generate(GeneratorConfig(seed=3, days=days)).transactions
    encoded = [(k, v) for _t, k, v in wire_records(table, "transaction")]
    topic = _topic(settings)
    try:

        def ours() -> None:
            replay(settings, table, topics=StreamTopics(transactions=topic))

        def bare() -> None:
            producer = Producer(producer_config(settings, **{"linger.ms": 20}))
            for key, value in encoded:
                while True:
                    try:
                        producer.produce(topic, value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
            assert producer.flush(120) == 0

        rate = _median_rate(repeat, table.num_rows, ours)
        floor = _median_rate(repeat, table.num_rows, bare)
    finally:
        admin = admin_client(settings)
        admin.delete_topics([topic])[topic].result(30)
    size = sum(len(v) for _k, v in encoded) / len(encoded)
    print(f"produce with acks=all to {settings.bootstrap}: {table.num_rows:,} tx per run")
    print(f"  replay (encode + produce) : {rate:>10,.0f} tx/s   (target >= 30,000)")
    print(f"  bare producer, pre-encoded: {floor:>10,.0f} tx/s   (baseline)")
    print(f"  ratio                     : {rate / floor:>10.2f}   (mean record {size:.0f} bytes)")


def bench_validation(repeat: int) -> None:
    table = generate(GeneratorConfig(seed=4, days=1)).transactions
    values = [v for _t, _k, v in wire_records(table, "transaction")]
    validator, now = TransactionValidator(), datetime.now(UTC) + timedelta(days=3650)
    schema = json_schema("transaction")
    full = ContractValidator(schema, format_checker=ContractValidator.FORMAT_CHECKER)

    def ours() -> None:
        for value in values:
            validator.validate(value, now)

    def baseline() -> None:
        for value in values:
            full.is_valid(json.loads(value))

    rate = _median_rate(repeat, len(values), ours)
    floor = _median_rate(repeat, len(values), baseline)
    print(f"validation at the entry: {len(values):,} generated records")
    print(f"  validate (fast checks + policy) : {rate:>10,.0f} records/s")
    print(f"  full JSON Schema validation     : {floor:>10,.0f} records/s   (baseline)")
    print(f"  ratio                           : {rate / floor:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--produce", type=int, default=200_000, help="records per produce run")
    args = parser.parse_args()
    cores = os.cpu_count()
    pinned = hasattr(os, "sched_setaffinity")
    print(f"machine: {cores} cores; generation runs pinned to one core: {pinned}")
    if pinned:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    bench_generation(args.repeat)
    bench_validation(args.repeat)
    if pinned:
        os.sched_setaffinity(0, set(range(cores or 1)))
    bench_produce(args.produce, args.repeat)


if __name__ == "__main__":
    main()
