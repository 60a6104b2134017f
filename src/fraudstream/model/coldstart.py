"""The cold-start experiment: an anomaly model on the same features, labels optional.

Row shapes as in ``experiment``: feature rows from the same replay; the training
period's rows fit the IsolationForest without labels; when labels exist the test
period is evaluated like a supervised model, beside the rules score.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import ProgressCallback, attach_labels, build_features
from fraudstream.model import plots
from fraudstream.model.anomaly import fit_anomaly
from fraudstream.model.baselines import rules_score
from fraudstream.model.experiment import Experiment, lineage_of
from fraudstream.model.metrics import evaluate
from fraudstream.model.split import TimeSplit, holdout_rows, train_rows

NO_LABELS = pd.DataFrame(
    {
        "transaction_id": pd.Series(dtype=str),
        "is_fraud": pd.Series(dtype=bool),
        "fraud_scenario": pd.Series(dtype=object),
        "label_time": pd.Series(dtype="datetime64[us, UTC]"),
    }
)


def run_anomaly_experiment(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None,
    split: TimeSplit,
    target_alert_rate: float,
    on_rows: ProgressCallback | None = None,
) -> Experiment:
    """Fit the anomaly scorer on the training period; report on the test period if labelled."""
    known = labels if labels is not None else NO_LABELS
    t0 = time.perf_counter()
    features = build_features(transactions, known, on_progress=on_rows)
    t1 = time.perf_counter()
    train_frame = attach_labels(train_rows(features, split), known, known_at=split.test_start)
    x = train_frame[feature_names()].to_numpy(np.float64)
    scorer, threshold = fit_anomaly(x, target_alert_rate)
    t2 = time.perf_counter()
    test = attach_labels(holdout_rows(features, known, split), known)
    reports, figures = {}, {}
    if labels is not None and test["is_fraud"].any():
        scores = {
            "isolation_forest": scorer.score(test[feature_names()].to_numpy(np.float64)),
            "rules": rules_score(test),
        }
        reports = {
            "isolation_forest": evaluate(test, scores["isolation_forest"], threshold),
            "rules": evaluate(test, scores["rules"], 0.3),
        }
        y = test["is_fraud"].to_numpy()
        figures = {
            "pr_roc_curves.png": plots.curves(y, scores),
            "score_distribution.png": plots.score_distribution(
                y, scores["isolation_forest"], threshold
            ),
        }
    return Experiment(
        model=scorer,
        kind="isolation_forest",
        threshold=threshold,
        params={"target_alert_rate": target_alert_rate, **scorer.get_params()},
        fit_metrics={"train_alert_rate": float(np.mean(scorer.score(x) >= threshold))},
        split=split,
        lineage=lineage_of(transactions, train_frame, test, split),
        reports=reports,
        figures=figures,
        timings={"features": t1 - t0, "training": t2 - t1, "evaluation": time.perf_counter() - t2},
    )
