"""Model + rules vs the model alone on a generated history: the figures in docs/rules.md.

Trains XGBoost as `fraudstream train --no-register` does (the days before a 7-day delay and
the last 7 days, which are held out; here with a small search), then writes the held-out period's
scores as `fraudstream score-file` writes them, for `fraudstream rules backtest --scores`:

    fraudstream generate history --days 30 --seed 11 --start 2026-03-01 --out /tmp/h11
    python bench/rules_effect.py /tmp/h11 /tmp/h11/scores.parquet
    fraudstream rules backtest --rules src/fraudstream/rules/starter.yaml \\
        --transactions /tmp/h11/transactions.parquet --labels /tmp/h11/labels.parquet \\
        --scores /tmp/h11/scores.parquet --threshold <printed> --start <printed> --days 7

Prints the threshold and the held-out period to pass on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from fraudstream.features.replay import build_features
from fraudstream.model.experiment import run_experiment, scores_of
from fraudstream.model.split import default_split


def main(history: Path, out: Path, candidates: int = 4) -> None:
    txns = pd.read_parquet(history / "transactions.parquet")
    labels = pd.read_parquet(history / "labels.parquet")
    times = txns["event_time"]
    days = (times.max().ceil("D") - times.min().floor("D")).days
    split = default_split(times, days - 14, 7, 7)
    experiment = run_experiment(
        txns, labels, split, candidates, arms=("scale_pos_weight",), progress=print
    )
    rows = build_features(txns, labels)
    pd.DataFrame(
        {"transaction_id": rows["transaction_id"], "score": scores_of(experiment.model, rows)}
    ).to_parquet(out, index=False)
    print(f"threshold {experiment.threshold:.6f}")
    print(f"held out: --start {split.test_start.date()} --days {split.test_days}")
    print(f"scores -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
