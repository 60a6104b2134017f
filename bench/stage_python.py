"""The card stage's Python per row, outside Spark: with and without kept decoded states.

Prints figures, asserts nothing; needs no platform. What one Spark task of the stage runs
in its Python worker for a bucket, minus the bridge: the bucket's packed value read back
(``BucketState.from_bytes``), every message validated and added to its card
(``process_bucket``), the bucket written back (``to_bytes``). The state of every card
comes from a first batch; then --batches batches of --batch-size live transactions of
known cards run through two copies of that state, alternately: without kept states
(capacity 0: every touched card decoded) and with them (``DecodedCards`` at the scorer's
default, each batch taking what the batch before kept, as in a stream). Figures are
medians in µs per row; ``ratio`` is with / without, same run.

Usage: python bench/stage_python.py [--batch-size 3000] [--batches 8] [--customers 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fraudstream.generator import GeneratorConfig, generate
from fraudstream.schema.tables import wire_records
from fraudstream.scoring.cards import (
    BucketState,
    DecodedCards,
    Message,
    process_bucket,
)
from fraudstream.validation import TransactionValidator

START = datetime(2026, 3, 2, tzinfo=UTC)


def _pool(customers: int) -> list[dict[str, Any]]:
    data = generate(
        GeneratorConfig(seed=9, start=START, days=30, customers=customers, merchants=300)
    )
    return [json.loads(value) for _, _, value in wire_records(data.transactions, "transaction")]


def _messages(pool: list[dict[str, Any]], start: int, count: int) -> list[Message]:
    """``count`` live transactions of the pool's cards, stamped now, as Kafka records."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    out = []
    for i in range(start, start + count):
        record = {
            **pool[i % len(pool)],
            "transaction_id": f"p{uuid.uuid4().hex[:16]}",
            "event_time": now,
        }
        out.append(Message(json.dumps(record).encode(), None, "transactions", i % 6, i, 0))
    return out


def _batch(stored: bytes, messages: list[Message], decoded: DecodedCards) -> tuple[bytes, float]:
    validator = TransactionValidator()
    started = time.perf_counter()
    bucket = BucketState.from_bytes(stored, decoded)
    process_bucket(bucket, messages, validator, datetime.now(UTC))
    value = bucket.to_bytes()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--customers", type=int, default=3000)
    args = parser.parse_args()
    pool = _pool(args.customers)
    first, _ = _batch(BucketState().to_bytes(), _messages(pool, 0, len(pool)), DecodedCards(0))
    cards = len(BucketState.from_bytes(first).blobs)
    # Two streams over the same batches, one state each: every touched card decoded, or
    # the states kept by the batch before (the first batch, not measured, fills them).
    caches = {"decoded_every_card": DecodedCards(0), "kept_states": DecodedCards()}
    stored = dict.fromkeys(caches, first)
    per_row: dict[str, list[float]] = {name: [] for name in caches}
    for number in range(args.batches + 1):
        messages = _messages(pool, len(pool) + number * args.batch_size, args.batch_size)
        for name, cache in caches.items():
            stored[name], seconds = _batch(stored[name], messages, cache)
            if number:
                per_row[name].append(seconds / args.batch_size * 1e6)
    kept = caches["kept_states"]
    medians = {name: round(statistics.median(v), 1) for name, v in per_row.items()}
    print(
        json.dumps(
            {
                "stage_python": {
                    "cards_in_state": cards,
                    "batch_size": args.batch_size,
                    "batches": args.batches,
                    "us_per_row_median": medians,
                    "ratio": round(medians["kept_states"] / medians["decoded_every_card"], 2),
                    "kept": {"hits": kept.hits, "misses": kept.misses},
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                }
            }
        )
    )


if __name__ == "__main__":
    main()
