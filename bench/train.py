"""Benchmark training on a generated history: feature build, search, final fit, quality.

Prints figures and ratios, never asserts. The project's protocol (paired
imbalance ablation, randomized search with successive halving over prequential
folds, early-stopped final fit) is compared in the same run with a seed-style
baseline: SMOTE inside a RandomizedSearchCV of the same number of candidates x 3
shuffled stratified folds, refitted on the same training rows. Both are scored on
the same test period (after the delay), so the AP difference is like for like.

    .venv/bin/python bench/train.py [--customers 10000 --days 50] [--candidates 20] [--no-baseline]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score
from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold
from xgboost import XGBClassifier

from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.experiment import scores_of, training_rows, validation_folds
from fraudstream.model.metrics import card_precision_at_k
from fraudstream.model.split import TimeSplit, holdout_rows
from fraudstream.model.training import MISSING_SENTINEL, PARAM_SPACE, train


def seed_style_baseline(x: np.ndarray, y: np.ndarray, candidates: int) -> tuple[object, float]:
    """SMOTE in a shuffled 3-fold RandomizedSearchCV, refit on all rows; (model, seconds)."""
    pipe = Pipeline(
        [
            ("fill", SimpleImputer(strategy="constant", fill_value=MISSING_SENTINEL)),
            ("smote", SMOTE(random_state=0)),
            ("xgb", XGBClassifier(tree_method="hist", n_jobs=2, missing=MISSING_SENTINEL)),
        ]
    )
    space = {f"xgb__{k}": v for k, v in PARAM_SPACE.items()}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = RandomizedSearchCV(
        pipe, space, n_iter=candidates, cv=cv, scoring="average_precision", random_state=0
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    config = GeneratorConfig(seed=5, start=start, days=args.days, customers=args.customers)
    generated = generate(config)
    txns, labels = generated.transactions.to_pandas(), generated.labels.to_pandas()
    print(f"transactions: {len(txns):,}, labels: {len(labels):,} (generator seed 5)")
    total0 = time.perf_counter()

    t0 = time.perf_counter()
    features = build_features(txns, labels)
    build_s = time.perf_counter() - t0
    print(f"feature build: {build_s:.1f} s, {len(txns) / build_s:,.0f} rows/s")

    test_days, delay_days = 7, 7
    split = TimeSplit(
        pd.Timestamp(start), args.days - test_days - delay_days, delay_days, test_days
    )
    rows = training_rows(features, labels, split)
    test = attach_labels(holdout_rows(features, labels, split), labels)
    folds = validation_folds(rows, split, n_folds=3)
    t0 = time.perf_counter()
    result = train(rows, feature_names(), folds, args.candidates, halving=True)
    train_s = time.perf_counter() - t0
    search_s = sum(r.fit_seconds for r in result.ablation.values())
    print(
        f"search + final fit: {train_s:.1f} s ({args.candidates} candidates per arm, "
        f"successive halving, {len(folds)} prequential folds, {len(rows):,} training rows)"
    )
    for arm, found in result.ablation.items():
        print(
            f"  arm {arm:16s} validation AP {found.best_ap:.4f}, fit time {found.fit_seconds:.1f} s"
        )
    print(f"  kept: {result.imbalance}; summed fold fit time {search_s:.1f} s")
    xs = rows[feature_names()].to_numpy(np.float64)
    t0 = time.perf_counter()
    XGBClassifier(**result.model.get_params()).set_params(n_jobs=2).fit(
        xs[folds[0][0]],
        rows["is_fraud"].to_numpy()[folds[0][0]],
        eval_set=[(xs[folds[0][1]], rows["is_fraud"].to_numpy()[folds[0][1]])],
        verbose=False,
    )
    print(f"final fit alone: {time.perf_counter() - t0:.1f} s")
    ours = scores_of(result.model, test)
    ours_ap = average_precision_score(test["is_fraud"], ours)
    print(
        f"validation AP {result.validation_ap:.4f}; test AP {ours_ap:.4f}, "
        f"test CP@100 {card_precision_at_k(test, ours):.4f}"
    )
    p50, p99 = single_row_latency_ms(result.model, test[feature_names()].to_numpy(np.float64))
    print(f"single-row inference, nthread=1: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(f"total (features + training + evaluation): {time.perf_counter() - total0:.1f} s")
    if args.no_baseline:
        return
    base_model, base_s = seed_style_baseline(
        xs[folds[0][0]], rows["is_fraud"].to_numpy()[folds[0][0]], args.candidates
    )
    base = np.asarray(base_model.predict_proba(test[feature_names()].to_numpy(np.float64))[:, 1])
    base_ap = average_precision_score(test["is_fraud"], base)
    print(
        f"baseline (SMOTE in RandomizedSearchCV, {args.candidates} x 3 shuffled folds): "
        f"{base_s:.1f} s, test AP {base_ap:.4f}, CP@100 {card_precision_at_k(test, base):.4f}"
    )
    print(
        f"time ratio ours / baseline: {train_s / base_s:.2f}x; "
        f"test AP difference ours - baseline: {ours_ap - base_ap:+.4f}"
    )


if __name__ == "__main__":
    main()
