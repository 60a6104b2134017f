"""XGBoost training: randomized search over prequential folds with early stopping, a
paired imbalance ablation (SMOTE inside training folds vs ``scale_pos_weight``), a
refit on every training row, Platt calibration (``model.calibration``) and the
F2-optimal decision threshold on the calibrated scale.

Nothing here logs or stores: the result is a ``TrainingResult`` the caller hands to
the registry adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform, randint, uniform
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score
from sklearn.model_selection import HalvingRandomSearchCV, ParameterSampler
from xgboost import XGBClassifier
from xgboost.callback import EarlyStopping

from fraudstream.features.catalogue import MATURITY_DELAY_S
from fraudstream.model.calibration import (
    IDENTITY,
    MIN_CALIBRATION_FRAUDS,
    Calibration,
    calibrated,
    calibration_rows,
    fit_calibration,
    margins_of,
)
from fraudstream.model.threshold import (
    DAY,
    f2_alert_rate,
    folds_to_use,
    fraud_weights,
    label_completeness,
    row_completeness,
    threshold_at_alert_rate,
)

Imbalance = Literal["scale_pos_weight", "smote"]
Folds = Sequence[tuple[np.ndarray, np.ndarray]]
Progress = Callable[[str], None]
# SMOTE cannot interpolate NaN: the SMOTE arm fills it with a sentinel that XGBoost
# is told to treat as missing (NaN stays missing too), so both arms score raw rows.
MISSING_SENTINEL = -999.0
# Trees are added until validation AP has not improved by MIN_AP_GAIN for
# EARLY_STOPPING_ROUNDS rounds, up to MAX_ROUNDS: the tree count is found per fold,
# not searched. Without the minimum gain, AP creeping up by 1e-5 kept slow
# candidates running to the cap (measured: 30 s instead of 2 s per candidate).
MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 25
MIN_AP_GAIN = 5e-4

# For about 0.5 % fraud: shallow-to-medium trees, leaves that must hold a few
# weighted frauds (min_child_weight), row and column sampling against the few
# positives being memorised, and fewer histogram bins as a speed knob.
PARAM_SPACE: dict[str, Any] = {
    "max_depth": randint(3, 9),
    "min_child_weight": loguniform(1, 50),
    "learning_rate": loguniform(0.05, 0.3),
    "subsample": uniform(0.6, 0.4),
    "colsample_bytree": uniform(0.5, 0.5),
    "reg_lambda": loguniform(0.5, 20),
    "max_bin": [64, 128, 256],
}
# The search trains each fold on every fraud and at most this many genuine rows per
# fraud (a seeded sample, the same for every candidate and both arms); validation
# rows are never sampled. At 0.5 % fraud this keeps about a fifth of the rows and
# ranks candidates as the full rows do; the final fit uses every row.
NEGATIVES_PER_FRAUD = 40.0

# The second imbalance arm re-runs this many of the first arm's best candidates on
# the same folds: a paired comparison at a fraction of a second full search.
ABLATION_CANDIDATES = 5

# Successive halving (scikit-learn's) cannot early-stop per fold: it searches the tree count.
HALVING_SPACE: dict[str, Any] = {**PARAM_SPACE, "n_estimators": randint(100, 400)}


def base_classifier(imbalance: Imbalance, pos_weight: float, n_jobs: int) -> XGBClassifier:
    """XGBoost with the hist tree method; ``scale_pos_weight`` only in that arm.

    ``base_score`` is pinned at 0.5: XGBoost would otherwise start from the
    training rows' fraud rate, which differs between a search fold (genuine rows
    sampled) and the refit (all rows), and the threshold found on the fold's
    scores would not fit the refitted model's scores.
    """
    return XGBClassifier(
        tree_method="hist",
        base_score=0.5,
        eval_metric="aucpr",
        n_jobs=n_jobs,
        random_state=0,
        scale_pos_weight=pos_weight if imbalance == "scale_pos_weight" else 1.0,
        missing=MISSING_SENTINEL if imbalance == "smote" else np.nan,
    )


def estimator(
    imbalance: Imbalance, pos_weight: float, n_jobs: int = 2, sampler: Any = None
) -> Pipeline:
    """The pipeline of the halving search: [fill NaN -> SMOTE ->] XGBoost.

    imblearn's Pipeline applies a sampler only when fitting, so SMOTE sees the
    training rows of a fold and never its validation rows.
    """
    steps: list[tuple[str, Any]] = []
    if imbalance == "smote":
        steps += [
            ("fill", SimpleImputer(strategy="constant", fill_value=MISSING_SENTINEL)),
            ("smote", sampler if sampler is not None else SMOTE(random_state=0)),
        ]
    steps.append(("xgb", base_classifier(imbalance, pos_weight, n_jobs)))
    return Pipeline(steps)


def candidates_for(count: int) -> list[dict[str, Any]]:
    """``count`` parameter sets drawn by scikit-learn's randomized search sampler.

    The draw is seeded, so both imbalance arms see the same candidates (paired).
    """
    drawn = ParameterSampler(PARAM_SPACE, n_iter=count, random_state=0)
    return [{k: _plain(v) for k, v in params.items()} for params in drawn]


def resample_training_rows(
    x: np.ndarray, y: np.ndarray, sampler: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE on training rows only (NaN filled with the sentinel XGBoost treats as missing)."""
    filled = np.where(np.isnan(x), MISSING_SENTINEL, x)
    smote = sampler if sampler is not None else SMOTE(random_state=0)
    resampled_x, resampled_y = smote.fit_resample(filled, y)
    return np.asarray(resampled_x), np.asarray(resampled_y)


@dataclass
class FoldFit:
    """One candidate on one fold: validation AP at the early-stopped tree count."""

    average_precision: float
    trees: int
    scores: np.ndarray


def fit_fold(
    x: np.ndarray,
    y: np.ndarray,
    fold: tuple[np.ndarray, np.ndarray],
    imbalance: Imbalance,
    params: dict[str, Any],
    sampler: Any = None,
    n_jobs: int = 2,
) -> FoldFit:
    """Fit on the fold's training rows, early-stopped on its validation rows.

    Only the training rows are resampled (SMOTE arm) or weighted
    (``scale_pos_weight = negatives / positives`` of those rows); validation rows
    are scored as they are.
    """
    train, val = fold
    x_train, y_train = x[train], y[train]
    pos_weight = float((y_train == 0).sum() / max(1, (y_train == 1).sum()))
    if imbalance == "smote":
        x_train, y_train = resample_training_rows(x_train, y_train, sampler)
    model = base_classifier(imbalance, pos_weight, n_jobs)
    stop = EarlyStopping(
        rounds=EARLY_STOPPING_ROUNDS, min_delta=MIN_AP_GAIN, maximize=True, save_best=False
    )
    model.set_params(**params, n_estimators=MAX_ROUNDS, callbacks=[stop])
    model.fit(x_train, y_train, eval_set=[(x[val], y[val])], verbose=False)
    trees = int(model.best_iteration) + 1
    scores = model.predict_proba(x[val], iteration_range=(0, trees))[:, 1]
    return FoldFit(float(average_precision_score(y[val], scores)), trees, scores)


@dataclass
class SearchResult:
    """The best candidate of one imbalance arm, scored by mean validation AP over the folds."""

    imbalance: Imbalance
    best_params: dict[str, Any]
    best_ap: float
    fit_seconds: float
    candidates: int
    best_trees: int = 0
    # out-of-sample validation scores of the best candidate, one array per fold,
    # in the folds' order (folds[0], the most recent, first)
    fold_scores: list[np.ndarray] = field(default_factory=list)
    recent_ap: float = float("nan")
    all_aps: list[float] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)

    def top(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` candidates with the highest mean validation AP, best first."""
        order = np.argsort(self.all_aps)[::-1][:count]
        return [self.tried[i] for i in order]


def search(
    x: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    imbalance: Imbalance,
    candidates: int = 20,
    halving: bool = False,
    sampler: Any = None,
    progress: Progress | None = None,
    only: Sequence[dict[str, Any]] | None = None,
) -> SearchResult:
    """Randomized search on the given folds, scored by mean validation Average Precision.

    Each candidate is fitted on every fold, one fit at a time with both cores
    (XGBoost's own threads; no nested parallelism), early-stopped on the fold's
    validation rows. The kept tree count is the mean of the best candidate's
    early-stopped counts. ``only`` replaces the drawn candidates (the paired
    ablation re-runs the best ones of the first arm). With ``halving``,
    scikit-learn's successive halving over rows is used instead (tree count
    searched, no early stopping).
    """
    if halving:
        return _halving_search(x, y, folds, imbalance, candidates, sampler)
    t0 = time.perf_counter()
    best: tuple[float, dict[str, Any], list[FoldFit]] | None = None
    aps = []
    drawn = list(only) if only is not None else candidates_for(candidates)
    for i, params in enumerate(drawn):
        fits = [fit_fold(x, y, fold, imbalance, params, sampler) for fold in folds]
        ap = float(np.mean([f.average_precision for f in fits]))
        aps.append(ap)
        if best is None or ap > best[0]:
            best = (ap, params, fits)
        if progress:
            progress(
                f"search {imbalance}: candidate {i + 1}/{len(drawn)} AP {ap:.4f} "
                f"({time.perf_counter() - t0:.0f} s), best {best[0]:.4f}"
            )
    assert best is not None, "at least one candidate is needed"
    ap, params, fits = best
    return SearchResult(
        imbalance=imbalance,
        best_params=params,
        best_ap=ap,
        fit_seconds=time.perf_counter() - t0,
        candidates=len(aps),
        best_trees=round(float(np.mean([f.trees for f in fits]))),
        fold_scores=[f.scores for f in fits],
        recent_ap=fits[0].average_precision,
        all_aps=aps,
        tried=drawn,
    )


def _halving_search(
    x: np.ndarray, y: np.ndarray, folds: Folds, imbalance: Imbalance, candidates: int, sampler: Any
) -> SearchResult:
    """scikit-learn's HalvingRandomSearchCV on the same folds (opt-in, ``--halving``)."""
    pos_weight = float((y == 0).sum() / max(1, (y == 1).sum()))
    # The first rung must hold enough frauds for every candidate to learn something.
    prevalence = max(float(y.mean()), 1e-6)
    first_rung = int(min(len(y), max(len(y) // 9, 100 / prevalence)))
    searcher = HalvingRandomSearchCV(
        estimator(imbalance, pos_weight, sampler=sampler),
        {f"xgb__{name}": dist for name, dist in HALVING_SPACE.items()},
        n_candidates=candidates,
        factor=3,
        min_resources=first_rung,
        scoring="average_precision",
        cv=list(folds),
        random_state=0,
        refit=False,
        error_score="raise",
    )
    t0 = time.perf_counter()
    searcher.fit(x, y)
    params = {k.removeprefix("xgb__"): _plain(v) for k, v in searcher.best_params_.items()}
    trees = int(params.pop("n_estimators"))
    fits = [fit_fold(x, y, fold, imbalance, params, sampler) for fold in folds]
    return SearchResult(
        imbalance=imbalance,
        best_params=params,
        best_ap=float(searcher.best_score_),
        fit_seconds=time.perf_counter() - t0,
        candidates=len(searcher.cv_results_["params"]),
        best_trees=min(trees, fits[0].trees),
        fold_scores=[f.scores for f in fits],
        recent_ap=fits[0].average_precision,
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class TrainingResult:
    """What a training run produced: the final model and everything to log with it.

    ``model`` is calibrated (its output is ``calibration`` applied to ``uncalibrated``'s)
    and ``threshold`` is on its scale.
    """

    model: XGBClassifier
    imbalance: Imbalance
    params: dict[str, Any]
    threshold: float
    validation_ap: float
    validation_f2: float
    ablation: dict[str, SearchResult] = field(default_factory=dict)
    best_iteration: int = 0
    final_fit_seconds: float = 0.0
    # the chosen alert rate: F2-optimal on the most recent fold (model.threshold)
    validation_alert_rate: float = float("nan")
    # estimated share of those rows' eventual fraud labels known at the cutoff
    validation_label_completeness: float = float("nan")
    # how many of the most recent folds chose the rate (more when one has few frauds)
    validation_folds_used: int = 1
    # positions (in the training frame) of those folds' validation rows: the rows on
    # which the alert rate becomes the stored threshold
    threshold_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the rows the final model was fitted on
    final_rows: int = 0
    final_frauds: int = 0
    calibration: Calibration = IDENTITY
    # the final model before calibration (same ranking): for before/after figures
    uncalibrated: XGBClassifier | None = None


def fit_final(
    x: np.ndarray,
    y: np.ndarray,
    imbalance: Imbalance,
    params: dict[str, Any],
    trees: int,
    n_jobs: int = 2,
) -> XGBClassifier:
    """Refit on every training row with the early-stopped tree count of the search.

    No rows are held out here: the search already measured this configuration on
    the prequential folds. The model is set to one thread for inference.
    """
    pos_weight = float((y == 0).sum() / max(1, (y == 1).sum()))
    model = base_classifier(imbalance, pos_weight, n_jobs)
    model.set_params(**params, n_estimators=max(1, trees))
    if imbalance == "smote":
        x, y = resample_training_rows(x, y)
    model.fit(x, y, verbose=False)
    model.set_params(n_jobs=1)
    return model


def sample_negatives(
    folds: Folds, y: np.ndarray, negatives_per_fraud: float | None, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds whose training positions keep every fraud and a seeded sample of genuine rows.

    Validation positions are returned unchanged. ``None`` (or a fold already within
    the ratio) keeps the fold as it is. Positions stay in event-time order.
    """
    rng = np.random.default_rng(seed)
    sampled = []
    for train, val in folds:
        frauds, genuine = train[y[train] == 1], train[y[train] == 0]
        if negatives_per_fraud is None:
            sampled.append((train, val))
            continue
        keep = int(max(1, len(frauds)) * negatives_per_fraud)
        if keep >= len(genuine):
            sampled.append((train, val))
            continue
        chosen = rng.choice(genuine, size=keep, replace=False)
        sampled.append((np.sort(np.concatenate([frauds, chosen])), val))
    return sampled


def train(
    frame: pd.DataFrame,
    feature_columns: list[str],
    folds: Folds,
    candidates: int = 20,
    halving: bool = False,
    arms: Sequence[Imbalance] = ("scale_pos_weight", "smote"),
    progress: Progress | None = None,
    negatives_per_fraud: float | None = NEGATIVES_PER_FRAUD,
    ablation_candidates: int = ABLATION_CANDIDATES,
    labels_known_at: pd.Timestamp | None = None,
) -> TrainingResult:
    """Search each imbalance arm on the same folds, keep the better validation AP, refit it.

    The first arm searches ``candidates`` draws; each further arm re-runs the first
    arm's ``ablation_candidates`` best on the same (sampled) folds, so the arms are
    compared candidate for candidate.

    ``frame`` holds the training rows in event-time order with ``is_fraud`` (and
    ``label_time``, the known verdict's time); ``folds`` index its rows by position,
    ``folds[0]`` being the most recent. The threshold is chosen as in
    ``model.threshold``: the alert rate maximising F2 on the kept candidate's
    out-of-sample scores of that most recent fold (older ones join while they hold
    fewer than ``MIN_KNOWN_FRAUDS`` known frauds), each known fraud weighted by the
    inverse of the label completeness at its age when ``labels_known_at`` (the label
    cutoff) is given, then the score giving that rate to the refitted model on the
    same rows. ``validation_f2`` is that weighted (estimated) F2.
    """
    x = frame[feature_columns].to_numpy(dtype=np.float64)
    y = frame["is_fraud"].to_numpy().astype(int)
    search_folds = sample_negatives(folds, y, negatives_per_fraud)
    ablation: dict[str, SearchResult] = {}
    for arm in arms:
        first = next(iter(ablation.values()), None)
        only = first.top(ablation_candidates) if first and not halving else None
        if progress:
            count = len(only) if only is not None else candidates
            progress(f"search ({arm}, {count} candidates x {len(folds)} folds)")
        ablation[arm] = search(
            x, y, search_folds, arm, candidates, halving, progress=progress, only=only
        )
    best = max(ablation.values(), key=lambda r: r.best_ap)
    if progress:
        progress(f"final fit ({best.imbalance}, {best.best_trees} trees, all {len(y):,} rows)")
    t0 = time.perf_counter()
    raw_model = fit_final(x, y, best.imbalance, best.best_params, best.best_trees)
    final_s = time.perf_counter() - t0
    if progress:
        progress("calibration model (oldest fold's training rows)")
    calibration = calibrate(frame, x, y, folds, best, labels_known_at)
    model = calibrated(raw_model, calibration)
    used = folds_to_use([int(y[v].sum()) for _, v in folds])
    vals = [v for _, v in folds[:used]]
    weights = [validation_weights(frame, v, labels_known_at) for v in vals]
    alert_rate, f2 = f2_alert_rate(best.fold_scores[:used], weights)
    val = np.concatenate(vals)
    threshold = threshold_at_alert_rate(model.predict_proba(x[val])[:, 1], alert_rate)
    return TrainingResult(
        model=model,
        imbalance=best.imbalance,
        params=best.best_params,
        threshold=threshold,
        validation_ap=best.recent_ap,
        validation_f2=f2,
        ablation=ablation,
        best_iteration=best.best_trees,
        final_fit_seconds=final_s,
        validation_alert_rate=alert_rate,
        validation_label_completeness=float(y[val].sum() / sum(w.sum() for w in weights)),
        validation_folds_used=used,
        threshold_rows=val,
        final_rows=len(y),
        final_frauds=int(y.sum()),
        calibration=calibration,
        uncalibrated=raw_model,
    )


def calibrate(
    frame: pd.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    best: SearchResult,
    labels_known_at: pd.Timestamp | None,
    mature: bool = True,
    labels_complete: bool = False,
) -> Calibration:
    """Platt's map fitted on the folds' mature validation rows (``model.calibration``).

    The rows are the validation rows at least ``MATURITY_DELAY_S`` older than the label
    cutoff (every validation row when they hold fewer than ``MIN_CALIBRATION_FRAUDS``
    known frauds, without a cutoff, or with ``mature`` False), and the fit takes a fraud
    to be labelled with the estimated completeness of its age's labels
    (``validation_completeness``, the curve of the threshold's F2; taken as complete
    with ``labels_complete``). Their margins must be out of sample: the final model was
    fitted on them, so the chosen configuration is fitted again, without sampling (as
    the final model is), on the oldest fold's training rows, which precede every
    validation row by the fold delay; the map fitted on its margins is the one applied
    to the final model (same parameters and tree count, so about the same scale).
    """
    event_time = frame["event_time"]
    validation = np.sort(np.concatenate([v for _, v in folds]))
    rows, mature_only = validation, False
    if mature and labels_known_at is not None:
        maturity = pd.Timedelta(seconds=MATURITY_DELAY_S)
        found = calibration_rows(event_time, validation, labels_known_at, maturity)
        if int(y[found].sum()) >= MIN_CALIBRATION_FRAUDS:
            rows, mature_only = found, True
    cutoff = None if labels_complete else labels_known_at
    completeness = validation_completeness(frame, rows, cutoff)
    older = folds[-1][0]
    model = fit_final(x[older], y[older], best.imbalance, best.best_params, best.best_trees)
    margins = margins_of(model, x[rows])
    return fit_calibration(margins, y[rows], event_time.iloc[rows], mature_only, completeness)


def refit(
    result: TrainingResult, x: np.ndarray, y: np.ndarray, threshold_x: np.ndarray
) -> TrainingResult:
    """The chosen arm, parameters and early-stopped tree count fitted again on ``x, y``.

    ``x, y`` are other rows than the search's (the most recent ones, with the labels
    known later); nothing is searched again. The threshold is the score that gives
    this model the alert rate already chosen (``result.validation_alert_rate``) on
    ``threshold_x``, the features of the rows that chose it, as ``train`` does for its
    own refit. The calibration found by ``train`` is applied to the new model (same
    configuration and tree count, so the same scale). Everything else (validation
    figures, ablation) is carried over.
    """
    t0 = time.perf_counter()
    raw_model = fit_final(x, y, result.imbalance, result.params, result.best_iteration)
    seconds = time.perf_counter() - t0
    model = calibrated(raw_model, result.calibration)
    scores = model.predict_proba(threshold_x)[:, 1]
    return replace(
        result,
        model=model,
        uncalibrated=raw_model,
        threshold=threshold_at_alert_rate(scores, result.validation_alert_rate),
        final_fit_seconds=seconds,
        final_rows=len(y),
        final_frauds=int(y.sum()),
    )


def validation_completeness(
    frame: pd.DataFrame, rows: np.ndarray, labels_known_at: pd.Timestamp | None
) -> np.ndarray:
    """The estimated share of a fraud's labels known at each of ``rows``' age at the cutoff
    (``row_completeness``; the curve estimated as ``validation_weights`` does). Ones without
    a cutoff or ``label_time``."""
    if labels_known_at is None or "label_time" not in frame:
        return np.ones(len(rows))
    y = frame["is_fraud"].to_numpy().astype(int)
    curve = label_completeness(frame["event_time"], frame["label_time"], y, labels_known_at)
    ages = ((labels_known_at - frame["event_time"].iloc[rows]) / DAY).to_numpy(np.float64)
    return row_completeness(ages, curve)


def validation_weights(
    frame: pd.DataFrame, val: np.ndarray, labels_known_at: pd.Timestamp | None
) -> np.ndarray:
    """What each validation row counts as a fraud in the threshold's F2 (``fraud_weights``).

    The completeness curve is estimated on every training row (older rows show how
    late labels arrive); without a cutoff or ``label_time`` the labels count as complete.
    """
    y = frame["is_fraud"].to_numpy().astype(int)
    if labels_known_at is None or "label_time" not in frame:
        return fraud_weights(y[val], np.zeros(len(val)), None)
    curve = label_completeness(frame["event_time"], frame["label_time"], y, labels_known_at)
    ages = ((labels_known_at - frame["event_time"].iloc[val]) / DAY).to_numpy(np.float64)
    return fraud_weights(y[val], ages, curve)
