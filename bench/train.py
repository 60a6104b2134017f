"""Benchmark training on a generated history: feature build, search, final fit, quality.

Prints figures and ratios, never asserts. The project's protocol (randomized search
over prequential folds with per-fold early stopping, the paired imbalance ablation,
a refit on all training rows) is compared in the same run with a seed-style
baseline: SMOTE inside a RandomizedSearchCV of the same number of candidates x 3
shuffled stratified folds over a searched tree count, refitted on the same
training rows. Both are scored on the same test period (after the delay), so the
AP difference is like for like. At the stored threshold the script prints the alert
rate, precision, recall and F2 of the model beside the logistic-regression and rules
baselines (``model.experiment.report_with_baselines``), and the seed-style baseline's
at 0.5 (its ``predict``).

The final fit is compared in the same run too: the chosen configuration fitted on
the training period (labels known at the test start) against the same configuration
refitted on every row before the test period (labels known at its end,
``fraudstream train --final-fit recent``), both scored on the test period and, with
``--future-days N``, on the N days after it, which neither model has seen and whose
labels are complete (the split then ends N days before the history does).

The generated history is cached under ``--cache-dir`` (outside the repository) so
repeated runs skip generation; generation time is not part of any figure.

    .venv/bin/python bench/train.py [--customers 10000 --days 50] [--candidates 20]
        [--no-baseline] [--no-smote] [--future-days 7] [--labels-regime mixed]
        [--cache-dir ~/.cache/fraudstream/bench]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform, randint, uniform
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score
from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold
from xgboost import XGBClassifier

from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator import (
    DEFAULT_LABEL_REGIME,
    LABEL_REGIMES,
    GeneratorConfig,
    generate,
    label_regime,
    write_history,
)
from fraudstream.model.experiment import (
    recent_rows,
    report_with_baselines,
    scores_of,
    training_rows,
    validation_folds,
)
from fraudstream.model.metrics import at_threshold, card_precision_at_k, evaluate
from fraudstream.model.split import TimeSplit, holdout_rows
from fraudstream.model.training import MISSING_SENTINEL, TrainingResult, refit, train

# What comparable projects search: the tree count is a searched parameter, no early stopping.
SEED_STYLE_SPACE = {
    "xgb__n_estimators": randint(100, 400),
    "xgb__max_depth": randint(3, 9),
    "xgb__learning_rate": loguniform(0.03, 0.3),
    "xgb__subsample": uniform(0.6, 0.4),
    "xgb__colsample_bytree": uniform(0.6, 0.4),
    "xgb__min_child_weight": loguniform(1, 20),
    "xgb__reg_lambda": loguniform(0.5, 10),
}


def cached_history(
    cache: Path,
    customers: int,
    days: int,
    regime: str = DEFAULT_LABEL_REGIME,
    label_knobs: dict[str, float] | None = None,
    seed: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The generated history from the cache, generated and written on first use;
    ``label_knobs`` adjust the regime's label knobs (as ``--label KNOB=VALUE`` does)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    suffix = "" if regime == DEFAULT_LABEL_REGIME else f"-{regime}"
    suffix += "".join(f"-{k}{v:g}" for k, v in sorted((label_knobs or {}).items()))
    folder = cache / f"seed{seed}-c{customers}-d{days}{suffix}"
    txns_path, labels_path = folder / "transactions.parquet", folder / "labels.parquet"
    if not (txns_path.exists() and labels_path.exists()):
        print(f"generating the history into {folder} (once)", flush=True)
        labels = dataclasses.replace(label_regime(regime), **(label_knobs or {}))
        config = GeneratorConfig(
            seed=seed, start=start, days=days, customers=customers, labels=labels
        )
        folder.mkdir(parents=True, exist_ok=True)
        write_history(generate(config), folder)
    return pd.read_parquet(txns_path), pd.read_parquet(labels_path)


def seed_style_baseline(x: np.ndarray, y: np.ndarray, candidates: int) -> tuple[object, float]:
    """SMOTE in a shuffled 3-fold RandomizedSearchCV, refit on all rows; (model, seconds)."""
    pipe = Pipeline(
        [
            ("fill", SimpleImputer(strategy="constant", fill_value=MISSING_SENTINEL)),
            ("smote", SMOTE(random_state=0)),
            ("xgb", XGBClassifier(tree_method="hist", n_jobs=2, missing=MISSING_SENTINEL)),
        ]
    )
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = RandomizedSearchCV(
        pipe,
        SEED_STYLE_SPACE,
        n_iter=candidates,
        cv=cv,
        scoring="average_precision",
        random_state=0,
    )
    t0 = time.perf_counter()
    search.fit(x, y)
    return search.best_estimator_, time.perf_counter() - t0


def single_row_latency_ms(model: XGBClassifier, x: np.ndarray) -> tuple[float, float]:
    booster = model.get_booster()
    booster.set_param({"nthread": 1})
    times = []
    for i in range(min(2000, len(x))):
        t0 = time.perf_counter()
        booster.inplace_predict(x[i : i + 1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3), float(np.quantile(times, 0.99) * 1e3)


def compare_final_fits(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    split: TimeSplit,
    rows: pd.DataFrame,
    result: TrainingResult,
    future_days: int,
) -> None:
    """The training-period fit against the refit on the most recent rows, same configuration."""
    names = feature_names()
    recent = recent_rows(features, labels, split)
    t0 = time.perf_counter()
    refitted = refit(
        result,
        recent[names].to_numpy(np.float64),
        recent["is_fraud"].to_numpy().astype(int),
        rows[names].to_numpy(np.float64)[result.threshold_rows],
    )
    print(
        f"final fit compared ({result.best_iteration} trees, {result.imbalance}): training "
        f"period {result.final_rows:,} rows / {result.final_frauds:,} known frauds; recent "
        f"{refitted.final_rows:,} rows / {refitted.final_frauds:,} known frauds, "
        f"refit {time.perf_counter() - t0:.1f} s"
    )
    periods = {"test period": split}
    if future_days:
        periods[f"next {future_days} days"] = TimeSplit(
            split.train_start, split.train_days + split.delay_days + split.test_days, 0, future_days
        )
    for period, window in periods.items():
        held = attach_labels(holdout_rows(features, labels, window), labels)
        figures = {
            name: evaluate(held, scores_of(fit.model, held), fit.threshold)
            for name, fit in (("training period", result), ("recent", refitted))
        }
        for name, found in figures.items():
            print(
                f"  {period:12s} {name:15s} AUC {found['auc_roc']:.4f}, AP "
                f"{found['average_precision']:.4f}, CP@100 {found['card_precision_at_100']:.4f}; "
                f"at its threshold {found['threshold']:.4f}: alert rate "
                f"{found['alert_rate']:.3%}, precision {found['precision']:.3f}, "
                f"recall {found['recall']:.3f}, F2 {found['f2']:.3f}, ECE {found['ece']:.4f}"
            )
        old, new = figures["training period"], figures["recent"]
        print(
            f"  {period:12s} recent - training period: AP "
            f"{new['average_precision'] - old['average_precision']:+.4f}, AUC "
            f"{new['auc_roc'] - old['auc_roc']:+.4f}, F2 {new['f2'] - old['f2']:+.3f} "
            f"({len(held):,} rows, {int(held['is_fraud'].sum())} frauds)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-smote", action="store_true", help="Search scale_pos_weight only.")
    parser.add_argument(
        "--future-days",
        type=int,
        default=0,
        help="Also score both final fits on this many days after the test period.",
    )
    parser.add_argument(
        "--labels-regime", choices=list(LABEL_REGIMES), default=DEFAULT_LABEL_REGIME
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "fraudstream" / "bench"
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    txns, labels = cached_history(args.cache_dir, args.customers, args.days, args.labels_regime)
    start = txns["event_time"].min().floor("D")
    print(
        f"transactions: {len(txns):,}, labels: {len(labels):,} "
        f"(generator seed 5, label regime {args.labels_regime})"
    )
    total0 = time.perf_counter()

    t0 = time.perf_counter()
    features = build_features(txns, labels)
    build_s = time.perf_counter() - t0
    print(f"feature build: {build_s:.1f} s, {len(txns) / build_s:,.0f} rows/s", flush=True)

    test_days, delay_days = 7, 7
    train_days = args.days - test_days - delay_days - args.future_days
    split = TimeSplit(start, train_days, delay_days, test_days)
    rows = training_rows(features, labels, split)
    test = attach_labels(holdout_rows(features, labels, split), labels)
    folds = validation_folds(rows, split, n_folds=3)
    arms = ("scale_pos_weight",) if args.no_smote else ("scale_pos_weight", "smote")
    t0 = time.perf_counter()
    result = train(
        rows,
        feature_names(),
        folds,
        args.candidates,
        arms=arms,
        progress=lambda msg: print(f"  .. {msg}", flush=True),
        labels_known_at=split.test_start,
    )
    train_s = time.perf_counter() - t0
    print(
        f"search + final fit: {train_s:.1f} s ({args.candidates} candidates per arm, "
        f"{len(folds)} prequential folds with early stopping, {len(rows):,} training rows, "
        f"{int(rows['is_fraud'].sum()):,} frauds)"
    )
    for arm, found in result.ablation.items():
        print(
            f"  arm {arm:16s} mean validation AP {found.best_ap:.4f}, "
            f"search {found.fit_seconds:.1f} s, {found.best_trees} trees"
        )
    print(f"  kept: {result.imbalance}; params {result.params}")
    print(f"final fit alone (all training rows): {result.final_fit_seconds:.1f} s")
    val_rows = rows.iloc[folds[0][1]]
    val_scores = result.ablation[result.imbalance].fold_scores[0]
    ours = scores_of(result.model, test)
    ours_ap = average_precision_score(test["is_fraud"], ours)
    ours_cp = card_precision_at_k(test, ours)
    print(
        f"validation (most recent fold) AP {result.validation_ap:.4f}, "
        f"CP@100 {card_precision_at_k(val_rows, val_scores):.4f}; "
        f"test AP {ours_ap:.4f}, test CP@100 {ours_cp:.4f}"
    )
    print(
        f"threshold {result.threshold:.4f}: validation alert rate "
        f"{result.validation_alert_rate:.3%} on the {result.validation_folds_used} most recent "
        f"fold(s) (estimated F2 {result.validation_f2:.3f}; the most recent holds "
        f"{int(val_rows['is_fraud'].sum())} known frauds; an estimated "
        f"{result.validation_label_completeness:.0%} of the eventual ones were known)"
    )
    reports, _ = report_with_baselines(result.model, result.threshold, test, rows)
    print(f"test period: {len(test):,} rows, fraud rate {test['is_fraud'].mean():.3%}")
    for name, found in reports.items():
        print(
            f"  {name:10s} at its threshold {found['threshold']:.4f}: alert rate "
            f"{found['alert_rate']:.3%}, precision {found['precision']:.3f}, recall "
            f"{found['recall']:.3f}, F2 {found['f2']:.3f}, AP {found['average_precision']:.4f}"
        )
    p50, p99 = single_row_latency_ms(result.model, test[feature_names()].to_numpy(np.float64))
    print(f"single-row inference, nthread=1: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(f"total (features + training + evaluation): {time.perf_counter() - total0:.1f} s")
    print(f"load average after ours: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    compare_final_fits(features, labels, split, rows, result, args.future_days)
    if args.no_baseline:
        return
    xs, ys = rows[feature_names()].to_numpy(np.float64), rows["is_fraud"].to_numpy()
    base_model, base_s = seed_style_baseline(xs, ys, args.candidates)
    base = np.asarray(base_model.predict_proba(test[feature_names()].to_numpy(np.float64))[:, 1])  # type: ignore[attr-defined]
    base_ap = average_precision_score(test["is_fraud"], base)
    # The seed-style baseline decides as its predict() does: at 0.5.
    base_at = at_threshold(test["is_fraud"].to_numpy(), base, 0.5)
    print(
        f"baseline (SMOTE in RandomizedSearchCV, {args.candidates} x 3 shuffled folds, "
        f"same {len(rows):,} training rows): {base_s:.1f} s, test AP {base_ap:.4f}, "
        f"CP@100 {card_precision_at_k(test, base):.4f}; at 0.5: alert rate "
        f"{base_at['alert_rate']:.3%}, F2 {base_at['f2']:.3f}"
    )
    print(
        f"time ratio ours / baseline (search + fit): {train_s / base_s:.2f}x; "
        f"test AP difference ours - baseline: {ours_ap - base_ap:+.4f}"
    )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
