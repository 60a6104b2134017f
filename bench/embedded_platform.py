"""Benchmark the embedded platform: start/stop times and Kafka produce/consume rates.

Prints figures and ratios, never asserts. The durable producer (acks=all, idempotent:
what the platform uses) is compared with a baseline producer (acks=1, no idempotence)
measured in the same run on the same cluster; medians over --repeats runs.

    .venv/bin/python bench/embedded_platform.py [--records 50000] [--repeats 3] [--restart]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer

from fraudstream.adapters.kafka import (
    consumer_config,
    create_scratch_topic,
    delete_topic,
    producer_config,
)
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.settings import Settings, load_settings

PAYLOAD = (
    b'{"transaction_id":"%08d","card_id":"c-%05d","merchant_id":"m-0042",'
    b'"amount":42.17,"currency":"EUR","event_time":"2026-11-22T10:00:00Z"}'
)


def _topic(settings: Settings) -> str:
    return create_scratch_topic(settings.kafka, "bench")


def produce_rate(settings: Settings, topic: str, records: int, durable: bool) -> float:
    overrides = {} if durable else {"acks": "1", "enable.idempotence": False}
    producer = Producer(producer_config(settings.kafka, **overrides))
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(
                    topic, key=b"c-%05d" % (i % 10_000), value=PAYLOAD % (i, i % 10_000)
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining:
        raise RuntimeError(f"{remaining} records not delivered")
    return records / elapsed


def consume_rate(settings: Settings, topic: str, records: int) -> float:
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    seen, start = 0, None
    deadline = time.monotonic() + 120
    while seen < records and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=10_000, timeout=1.0)
        if batch and start is None:
            start = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    consumer.close()
    return seen / (time.perf_counter() - (start or time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--restart", action="store_true", help="also time `down` and a warm `up`")
    args = parser.parse_args()

    settings = load_settings()
    platform = EmbeddedPlatform(settings)
    print(f"machine: {os.cpu_count()} cores; cluster {settings.kafka.bootstrap}")
    started = time.perf_counter()
    platform.up()
    print(f"platform up (as found):      {time.perf_counter() - started:6.1f} s")
    if args.restart:
        t0 = time.perf_counter()
        platform.down()
        t1 = time.perf_counter()
        platform.up()
        t2 = time.perf_counter()
        print(f"platform down:               {t1 - t0:6.1f} s")
        print(f"platform up (warm, stopped): {t2 - t1:6.1f} s")

    durable, baseline, consumed = [], [], []
    for _ in range(args.repeats):
        topic, scratch = _topic(settings), _topic(settings)
        baseline.append(produce_rate(settings, scratch, args.records, durable=False))
        durable.append(produce_rate(settings, topic, args.records, durable=True))
        consumed.append(consume_rate(settings, topic, args.records))
        for name in (topic, scratch):
            delete_topic(settings.kafka, name)
    med = statistics.median
    print(
        f"records per run: {args.records:,} of {len(PAYLOAD)} bytes, {args.repeats} runs (medians)"
    )
    print(f"produce acks=1 (baseline):   {med(baseline):10,.0f} rec/s")
    print(
        f"produce acks=all+idempotent: {med(durable):10,.0f} rec/s   "
        f"ratio to baseline {med(durable) / med(baseline):.2f}"
    )
    print(f"consume (read_committed):    {med(consumed):10,.0f} rec/s")


if __name__ == "__main__":
    main()
