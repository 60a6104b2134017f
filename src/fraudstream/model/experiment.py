"""One training experiment end to end, pure: features, split, search, evaluation, baselines.

Row shapes between steps:
transactions + labels -> feature rows (``replay.build_features``: id, event_time,
card_id, features) -> + ``is_fraud``/``fraud_scenario`` (training rows: labels
known at the test start; refit rows, the training and delay periods: labels known
at the test end; test rows: every label) -> scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fraudstream.features.catalogue import FEATURE_SET_VERSION, MATURITY_DELAY_S, feature_names
from fraudstream.features.replay import ProgressCallback, attach_labels, build_features
from fraudstream.model import plots
from fraudstream.model.baselines import logistic_baseline, rules_score
from fraudstream.model.metrics import evaluate, f2_threshold
from fraudstream.model.split import (
    TimeSplit,
    holdout_rows,
    prequential_folds,
    refit_rows,
    train_rows,
)
from fraudstream.model.training import (
    EARLY_STOPPING_ROUNDS,
    MAX_ROUNDS,
    MIN_AP_GAIN,
    Folds,
    Imbalance,
    TrainingResult,
    refit,
    train,
)

Progress = Callable[[str], None]


ModelKind = Literal["xgboost", "isolation_forest"]
# What the registered model is fitted on, once the search has chosen its parameters:
# "training-period" (the default): the training period's rows with the labels known at
# the test start, the model the test period evaluates without any later knowledge;
# "recent": every row before the test period with the labels known at its end (measured
# in docs/model.md: no better on the days after the test period).
FinalFit = Literal["recent", "training-period"]
FINAL_FITS: tuple[FinalFit, ...] = ("recent", "training-period")


@dataclass
class Experiment:
    """Everything a training run produced, ready for the registry adapter to log.

    ``model`` has ``predict_proba`` (column 1 is the fraud score) whatever its kind.
    """

    model: Any
    kind: ModelKind
    threshold: float
    params: dict[str, Any]
    split: TimeSplit
    lineage: dict[str, Any]
    reports: dict[str, dict[str, Any]]
    fit_metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # The training feature matrix (catalogue columns, training period): the reference
    # for drift monitoring. Not logged as such; the registry adapter derives from it.
    train_features: pd.DataFrame | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics: fit metrics, ``test_<scorer>_*`` and ``seconds_*``."""
        flat = {"threshold": self.threshold, **self.fit_metrics}
        for scorer, report in self.reports.items():
            for key, value in report.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    flat[f"test_{scorer}_{key}"] = float(value)
        flat.update({f"seconds_{k}": v for k, v in self.timings.items()})
        return flat


def fit_metrics(result: TrainingResult) -> dict[str, float]:
    """Validation figures of the final fit and of both ablation arms."""
    flat = {
        "validation_average_precision": result.validation_ap,
        "validation_f2": result.validation_f2,
        "validation_alert_rate": result.validation_alert_rate,
        "validation_label_completeness": result.validation_label_completeness,
        "validation_folds_used": float(result.validation_folds_used),
    }
    for arm, found in result.ablation.items():
        flat[f"ablation_{arm}_validation_ap"] = found.best_ap
        flat[f"ablation_{arm}_search_seconds"] = found.fit_seconds
    flat["final_fit_seconds"] = result.final_fit_seconds
    return flat


def fit_params(result: TrainingResult, final_fit: FinalFit = "training-period") -> dict[str, Any]:
    """The chosen parameters (``xgb_*``), the arm, the tree count and how it was found.

    ``n_trees`` is the final model's number of boosting rounds: the mean early-stopped
    count of the chosen candidate over the folds (``best_iteration``, the same number,
    is kept under its earlier name).
    """
    return {
        **{f"xgb_{k}": v for k, v in result.params.items()},
        "imbalance": result.imbalance,
        "best_iteration": result.best_iteration,
        "n_trees": int(result.model.get_booster().num_boosted_rounds()),
        "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
        "early_stopping_min_gain": MIN_AP_GAIN,
        "max_rounds": MAX_ROUNDS,
        "final_fit": final_fit,
        "final_fit_rows": result.final_rows,
        "final_fit_frauds": result.final_frauds,
        **result.calibration.params(),
    }


def scores_of(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Fraud probability per feature row, columns in catalogue order."""
    x = frame[feature_names()].to_numpy(dtype=np.float64)
    return np.asarray(model.predict_proba(x)[:, 1])


def report_with_baselines(
    model: Any, threshold: float, test: pd.DataFrame, train_frame: pd.DataFrame
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """The model, a logistic regression and the rules score, on the same ``test`` rows.

    The regression is fitted on ``train_frame`` and its threshold maximises F2 there;
    the rules alert at 0.3 (about two strong rules).
    """
    names = feature_names()
    lr = logistic_baseline(
        train_frame[names].to_numpy(np.float64), train_frame["is_fraud"].to_numpy()
    )
    lr_train = lr.predict_proba(train_frame[names].to_numpy(np.float64))[:, 1]
    scores = {
        "xgboost": scores_of(model, test),
        "logistic": lr.predict_proba(test[names].to_numpy(np.float64))[:, 1],
        "rules": rules_score(test),
    }
    thresholds = {
        "xgboost": threshold,
        "logistic": f2_threshold(train_frame["is_fraud"].to_numpy(), lr_train)[0],
        "rules": 0.3,
    }
    reports = {name: evaluate(test, s, thresholds[name]) for name, s in scores.items()}
    return reports, scores


def uncalibrated_report(
    result: TrainingResult, test: pd.DataFrame
) -> tuple[dict[str, Any], np.ndarray]:
    """The final model before calibration on the test rows, at the threshold raising the
    same alerts (the calibration is monotone: AUC and AP must equal the calibrated model's)."""
    scores = scores_of(result.uncalibrated, test)
    threshold = result.calibration.uncalibrated_threshold(result.threshold)
    return evaluate(test, scores, threshold), scores


def figures_for(
    model: Any, threshold: float, test: pd.DataFrame, scores: dict[str, np.ndarray]
) -> dict[str, Figure]:
    """The report's plots; ``scores`` holds ``xgboost`` (the model's) and may hold
    ``xgboost_uncalibrated``, drawn beside it in the reliability diagram only."""
    y = test["is_fraud"].to_numpy()
    sample = test[feature_names()].to_numpy(np.float64)[:5000]
    compared = {k: v for k, v in scores.items() if k != "xgboost_uncalibrated"}
    calibration = {
        name: scores[key]
        for name, key in (("calibrated", "xgboost"), ("uncalibrated", "xgboost_uncalibrated"))
        if key in scores
    }
    return {
        "pr_roc_curves.png": plots.curves(y, compared),
        "score_distribution.png": plots.score_distribution(y, scores["xgboost"], threshold),
        "reliability.png": plots.reliability(y, calibration, threshold),
        "feature_importance.png": plots.feature_importance(model, feature_names()),
        "shap_summary.png": plots.shap_summary(model, sample, feature_names()),
    }


def lineage_of(
    txns: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, split: TimeSplit
) -> dict[str, Any]:
    return {
        "feature_set_version": FEATURE_SET_VERSION,
        "data_start": txns["event_time"].min().isoformat(),
        "data_end": txns["event_time"].max().isoformat(),
        "rows_total": len(txns),
        "rows_train": len(train),
        "rows_test": len(test),
        "frauds_train": int(train["is_fraud"].sum()),
        "frauds_test": int(test["is_fraud"].sum()),
        **split.as_dict(),
    }


def label_delays(transactions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """How late the fraud labels came: the median and 90th percentile of their delay (days)
    and the share known within the feature set's maturity delay, which the mature merchant
    risks assume (docs/model.md, "Slow labels", says how to choose it from these)."""
    frauds = labels.loc[labels["is_fraud"].astype(bool), ["transaction_id", "label_time"]]
    frauds = frauds.merge(transactions[["transaction_id", "event_time"]], on="transaction_id")
    days = (frauds["label_time"] - frauds["event_time"]).dt.total_seconds() / 86_400
    maturity = MATURITY_DELAY_S / 86_400
    if days.empty:
        return {"maturity_delay_days": maturity}
    return {
        "maturity_delay_days": maturity,
        "fraud_label_delay_p50_days": round(float(days.quantile(0.5)), 2),
        "fraud_label_delay_p90_days": round(float(days.quantile(0.9)), 2),
        "fraud_labels_within_maturity_delay": round(float((days <= maturity).mean()), 4),
    }


def training_rows(features: pd.DataFrame, labels: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Training-period rows labelled with what was known at the test start, positions 0..n-1."""
    rows = attach_labels(train_rows(features, split), labels, known_at=split.test_start)
    return rows.reset_index(drop=True)


def recent_rows(features: pd.DataFrame, labels: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Every row before the test period, labelled with what was known at the test end.

    The rows of ``final_fit="recent"``: a week more recent than the training rows, and
    the training rows' labels a week more complete. Positions 0..n-1, event-time order.
    """
    rows = attach_labels(refit_rows(features, split), labels, known_at=split.test_end)
    return rows.reset_index(drop=True)


def validation_folds(train_frame: pd.DataFrame, split: TimeSplit, n_folds: int) -> Folds:
    """Prequential folds of ``train_days / (n_folds + 3)`` days inside the training period.

    The fold delay is the split's delay, capped at one fold, so the oldest fold keeps
    about half of the training days. ``folds[0]`` (the most recent) sets the
    threshold (``model.threshold``): its AP is the logged validation AP.
    """
    fold_days = max(1, split.train_days // (n_folds + 3))
    return prequential_folds(
        train_frame["event_time"], n_folds, fold_days, min(split.delay_days, fold_days)
    )


def run_experiment(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    split: TimeSplit,
    candidates: int = 20,
    n_folds: int = 3,
    halving: bool = False,
    arms: tuple[Imbalance, ...] = ("scale_pos_weight", "smote"),
    progress: Progress | None = None,
    on_rows: ProgressCallback | None = None,
    final_fit: FinalFit = "training-period",
) -> Experiment:
    """Build features, split in time, search and fit, evaluate against the baselines.

    With ``final_fit="recent"`` the registered model is the chosen configuration
    refitted on ``recent_rows`` (``training.refit``); the model fitted on the training
    period alone is then also reported on the test period, as ``xgboost_training_period``.
    """
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    say("building features")
    features = build_features(transactions, labels, on_progress=on_rows)
    t1 = time.perf_counter()
    train_frame = training_rows(features, labels, split)
    test = attach_labels(holdout_rows(features, labels, split), labels)
    folds = validation_folds(train_frame, split, n_folds)
    result = train(
        train_frame,
        feature_names(),
        folds,
        candidates,
        halving,
        arms,
        progress,
        labels_known_at=split.test_start,
    )
    training_period = result
    params: dict[str, Any] = {}
    if final_fit == "recent":
        recent = recent_rows(features, labels, split)
        say(f"final fit on the {len(recent):,} rows before the test period")
        names = feature_names()
        result = refit(
            result,
            recent[names].to_numpy(np.float64),
            recent["is_fraud"].to_numpy().astype(int),
            train_frame[names].to_numpy(np.float64)[result.threshold_rows],
        )
        params = {
            "final_fit_start": split.train_start.isoformat(),
            "final_fit_end": split.test_start.isoformat(),
            "final_fit_labels_known_at": split.test_end.isoformat(),
        }
    t2 = time.perf_counter()
    say(f"trained in {t2 - t1:.0f} s; evaluating on the test period")
    reports, scores = report_with_baselines(result.model, result.threshold, test, train_frame)
    if final_fit == "recent":
        reports["xgboost_training_period"] = evaluate(
            test, scores_of(training_period.model, test), training_period.threshold
        )
    if result.uncalibrated is not None:
        report, raw = uncalibrated_report(result, test)
        reports["xgboost_uncalibrated"], scores["xgboost_uncalibrated"] = report, raw
    figures = figures_for(result.model, result.threshold, test, scores)
    return Experiment(
        model=result.model,
        kind="xgboost",
        threshold=result.threshold,
        params={**fit_params(result, final_fit), **params},
        fit_metrics=fit_metrics(result),
        split=split,
        lineage={
            **lineage_of(transactions, train_frame, test, split),
            **label_delays(transactions, labels[labels["label_time"] <= split.test_start]),
        },
        reports=reports,
        figures=figures,
        timings={"features": t1 - t0, "training": t2 - t1, "evaluation": time.perf_counter() - t2},
        train_features=train_frame[feature_names()],
    )
