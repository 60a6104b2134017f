"""Benchmark the feature path: per-update latency and offline replay throughput.

Prints figures and ratios, never asserts. The replay builder (every feature of
the catalogue, point in time) is compared with a baseline measured in the same
run on the same rows: pandas' time-based rolling windows per card computing only
the 8 windowed card counts and sums, the way comparable projects build features.

    .venv/bin/python bench/features.py [--transactions FILE --labels FILE] [--rows 1000000]

Without files it builds a uniform stand-in history (``--cards``, ``--merchants``,
60 days): the timing depends on row, card and merchant counts, not on realism.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from fraudstream.features.card import update_card
from fraudstream.features.catalogue import CARD_WINDOWS, FEATURES
from fraudstream.features.events import TxnEvent
from fraudstream.features.merchant import update_merchant
from fraudstream.features.replay import build_features

START = pd.Timestamp("2026-01-01T00:00:00Z")


def stand_in_history(rows: int, cards: int, merchants: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, 60 * 86400, rows))
    return pd.DataFrame(
        {
            "transaction_id": np.char.add("t", np.arange(rows).astype(str)),
            "event_time": START + pd.to_timedelta(seconds.round(6), unit="s"),
            "card_id": np.char.add("c", rng.integers(0, cards, rows).astype(str)),
            "merchant_id": np.char.add("m", rng.integers(0, merchants, rows).astype(str)),
            "amount": rng.lognormal(3.5, 1.0, rows).round(2),
            "currency": "EUR",
            "merchant_category": rng.choice(["grocery", "travel", "fuel", "online"], rows),
            "lat": rng.uniform(40, 50, rows),
            "lon": rng.uniform(0, 10, rows),
        }
    )


def update_latency_us(repeats: int) -> tuple[float, float]:
    """Median µs per card update and per merchant update on a 30-day, 4-per-day card."""
    txns = [
        TxnEvent(f"t{k}", 1.7e9 + k * 21600.0, "c", f"m{k % 9}", 10.0 + k % 13, "g", 45.0, 5.0)
        for k in range(20_000)
    ]
    card_runs, merchant_runs = [], []
    for _ in range(repeats):
        card_state, merchant_state = None, None
        t0 = time.perf_counter()
        for txn in txns:
            card_state, _ = update_card(card_state, txn)
        t1 = time.perf_counter()
        for txn in txns:
            merchant_state, _ = update_merchant(merchant_state, txn)
        t2 = time.perf_counter()
        card_runs.append((t1 - t0) / len(txns) * 1e6)
        merchant_runs.append((t2 - t1) / len(txns) * 1e6)
    return statistics.median(card_runs), statistics.median(merchant_runs)


def pandas_rolling_baseline(txns: pd.DataFrame) -> float:
    """Seconds for per-card rolling count and sum over the four card windows."""
    t0 = time.perf_counter()
    frame = txns[["card_id", "event_time", "amount"]].sort_values(["card_id", "event_time"])
    frame = frame.set_index("event_time")
    grouped = frame.groupby("card_id")["amount"]
    for label, seconds in CARD_WINDOWS:
        rolled = grouped.rolling(f"{int(seconds)}s")
        rolled.count()
        rolled.sum()
        del label
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions")
    parser.add_argument("--labels")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=50_000)
    parser.add_argument("--merchants", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.transactions:
        txns = pd.read_parquet(args.transactions)
        labels = pd.read_parquet(args.labels) if args.labels else None
        source = args.transactions
    else:
        txns, labels = stand_in_history(args.rows, args.cards, args.merchants), None
        source = f"stand-in history, {args.cards:,} cards, {args.merchants:,} merchants"
    print(f"rows: {len(txns):,} ({source}); features: {len(FEATURES)}")
    card_us, merchant_us = update_latency_us(args.repeats)
    print(f"update_card     median {card_us:6.2f} µs per transaction")
    print(f"update_merchant median {merchant_us:6.2f} µs per transaction")
    builds, baselines = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        build_features(txns, labels)
        builds.append(time.perf_counter() - t0)
        baselines.append(pandas_rolling_baseline(txns))
    build_s, base_s = statistics.median(builds), statistics.median(baselines)
    print(
        f"replay builder (all {len(FEATURES)} features): {build_s:6.2f} s, "
        f"{len(txns) / build_s:,.0f} rows/s (median of {args.repeats})"
    )
    print(
        f"baseline pandas rolling (8 card features): {base_s:6.2f} s, "
        f"{len(txns) / base_s:,.0f} rows/s"
    )
    print(f"ratio builder / baseline time: {build_s / base_s:.2f}x")


if __name__ == "__main__":
    main()
