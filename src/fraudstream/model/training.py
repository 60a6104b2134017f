"""XGBoost training: randomized search over prequential folds, a paired imbalance
ablation (SMOTE inside training folds vs ``scale_pos_weight``), a final fit with
early stopping, and the F2-optimal decision threshold.

Nothing here logs or stores: the result is a ``TrainingResult`` the caller hands to
the registry adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform, randint, uniform
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score
from sklearn.model_selection import HalvingRandomSearchCV, RandomizedSearchCV
from xgboost import XGBClassifier

from fraudstream.model.metrics import f2_threshold

Imbalance = Literal["scale_pos_weight", "smote"]
Folds = Sequence[tuple[np.ndarray, np.ndarray]]
Progress = Callable[[str], None]
# SMOTE cannot interpolate NaN: the SMOTE arm fills it with a sentinel that XGBoost
# is told to treat as missing (NaN stays missing too), so both arms score raw rows.
MISSING_SENTINEL = -999.0

PARAM_SPACE: dict[str, Any] = {
    "n_estimators": randint(100, 400),
    "max_depth": randint(3, 9),
    "learning_rate": loguniform(0.03, 0.3),
    "subsample": uniform(0.6, 0.4),
    "colsample_bytree": uniform(0.6, 0.4),
    "min_child_weight": loguniform(1, 20),
    "reg_lambda": loguniform(0.5, 10),
}


def base_classifier(imbalance: Imbalance, pos_weight: float, n_jobs: int) -> XGBClassifier:
    """XGBoost with the hist tree method; ``scale_pos_weight`` only in that arm."""
    return XGBClassifier(
        tree_method="hist",
        eval_metric="aucpr",
        n_jobs=n_jobs,
        random_state=0,
        scale_pos_weight=pos_weight if imbalance == "scale_pos_weight" else 1.0,
        missing=MISSING_SENTINEL if imbalance == "smote" else np.nan,
    )


def estimator(
    imbalance: Imbalance, pos_weight: float, n_jobs: int = 2, sampler: Any = None
) -> Pipeline:
    """The pipeline searched: [fill NaN -> SMOTE ->] XGBoost.

    imblearn's Pipeline applies a sampler only when fitting, so SMOTE sees the
    training rows of a fold and never its validation rows. ``sampler`` replaces
    SMOTE (tests use it to watch what the sampler receives).
    """
    steps: list[tuple[str, Any]] = []
    if imbalance == "smote":
        steps += [
            ("fill", SimpleImputer(strategy="constant", fill_value=MISSING_SENTINEL)),
            ("smote", sampler if sampler is not None else SMOTE(random_state=0)),
        ]
    steps.append(("xgb", base_classifier(imbalance, pos_weight, n_jobs)))
    return Pipeline(steps)


def _space() -> dict[str, Any]:
    return {f"xgb__{name}": dist for name, dist in PARAM_SPACE.items()}


@dataclass
class SearchResult:
    imbalance: Imbalance
    best_params: dict[str, Any]
    best_ap: float
    fit_seconds: float
    candidates: int


def search(
    x: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    imbalance: Imbalance,
    candidates: int = 20,
    halving: bool = False,
    sampler: Any = None,
) -> SearchResult:
    """Randomized search on the given folds, scored by validation Average Precision.

    The same ``random_state`` draws the same candidates for both imbalance arms,
    so the ablation is paired (same folds, same candidates). With ``halving``,
    successive halving over rows keeps the budget while trying the candidates.
    """
    pos_weight = float((y == 0).sum() / max(1, (y == 1).sum()))
    common: dict[str, Any] = {
        "scoring": "average_precision",
        "cv": list(folds),
        "random_state": 0,
        "refit": False,
        "error_score": "raise",
    }
    model = estimator(imbalance, pos_weight, sampler=sampler)
    searcher: Any
    if halving:
        # The first rung must hold enough frauds for every candidate to learn something.
        prevalence = max(float(y.mean()), 1e-6)
        first_rung = int(min(len(y), max(len(y) // 9, 100 / prevalence)))
        searcher = HalvingRandomSearchCV(
            model, _space(), n_candidates=candidates, factor=3, min_resources=first_rung, **common
        )
    else:
        searcher = RandomizedSearchCV(model, _space(), n_iter=candidates, **common)
    searcher.fit(x, y)
    results = searcher.cv_results_
    params = {k.removeprefix("xgb__"): _plain(v) for k, v in searcher.best_params_.items()}
    return SearchResult(
        imbalance=imbalance,
        best_params=params,
        best_ap=float(searcher.best_score_),
        fit_seconds=float(np.sum(results["mean_fit_time"] * len(folds))),
        candidates=len(results["params"]),
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class TrainingResult:
    """What a training run produced: the final model and everything to log with it."""

    model: XGBClassifier
    imbalance: Imbalance
    params: dict[str, Any]
    threshold: float
    validation_ap: float
    validation_f2: float
    ablation: dict[str, SearchResult] = field(default_factory=dict)
    best_iteration: int = 0


def fit_final(
    x: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    imbalance: Imbalance,
    params: dict[str, Any],
    n_jobs: int = 2,
) -> tuple[XGBClassifier, float, float, float]:
    """Fit on the first fold's training rows, early-stopping on its (most recent) validation rows.

    Returns the model (set to one thread for inference), the F2 threshold, the
    validation AP and the validation F2, all from the validation rows.
    """
    train, val = folds[0]
    pos_weight = float((y[train] == 0).sum() / max(1, (y[train] == 1).sum()))
    model = base_classifier(imbalance, pos_weight, n_jobs)
    model.set_params(**params, early_stopping_rounds=30)
    x_train, y_train = x[train], y[train]
    if imbalance == "smote":
        filled = np.where(np.isnan(x_train), MISSING_SENTINEL, x_train)
        x_train, y_train = SMOTE(random_state=0).fit_resample(filled, y_train)
    model.fit(x_train, y_train, eval_set=[(x[val], y[val])], verbose=False)
    model.set_params(n_jobs=1)
    scores = model.predict_proba(x[val])[:, 1]
    threshold, f2 = f2_threshold(y[val], scores)
    return model, threshold, float(average_precision_score(y[val], scores)), f2


def train(
    frame: pd.DataFrame,
    feature_columns: list[str],
    folds: Folds,
    candidates: int = 20,
    halving: bool = False,
    arms: Sequence[Imbalance] = ("scale_pos_weight", "smote"),
    progress: Progress | None = None,
) -> TrainingResult:
    """Search each imbalance arm on the same folds, keep the better validation AP, fit it.

    ``frame`` holds the training rows in event-time order with ``is_fraud``;
    ``folds`` index its rows by position.
    """
    x = frame[feature_columns].to_numpy(dtype=np.float64)
    y = frame["is_fraud"].to_numpy().astype(int)
    ablation: dict[str, SearchResult] = {}
    for arm in arms:
        if progress:
            progress(f"search ({arm}, {candidates} candidates x {len(folds)} folds)")
        ablation[arm] = search(x, y, folds, arm, candidates, halving)
    best = max(ablation.values(), key=lambda r: r.best_ap)
    if progress:
        progress(f"final fit ({best.imbalance})")
    model, threshold, ap, f2 = fit_final(x, y, folds, best.imbalance, best.best_params)
    return TrainingResult(
        model=model,
        imbalance=best.imbalance,
        params=best.best_params,
        threshold=threshold,
        validation_ap=ap,
        validation_f2=f2,
        ablation=ablation,
        best_iteration=int(getattr(model, "best_iteration", 0) or 0),
    )
