"""Vectorised scoring of a feature matrix, with the top reason codes of every score.

One call scores a whole micro-batch: ``predict_proba`` for the score (the very call
the offline evaluation makes, so scores match it bit for bit) and, for XGBoost,
per-feature SHAP contributions (``pred_contribs``) for the reasons. The model runs
on one thread: Spark already runs one Python worker per core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names

TOP_REASONS = 3


@dataclass(frozen=True)
class ScoringModel:
    """A model the scorer can serve: its registry version, threshold and role."""

    model: Any
    version: str
    threshold: float
    feature_set_version: str
    role: str = "champion"

    @classmethod
    def checked(cls, loaded: Any, role: str = "champion") -> ScoringModel:
        """From a registry ``LoadedModel``; refuses another feature set or column order."""
        if loaded.feature_set_version != FEATURE_SET_VERSION:
            raise IncompatibleModelError(
                f"model version {loaded.version} uses feature set {loaded.feature_set_version!r}; "
                f"this scorer computes {FEATURE_SET_VERSION!r}"
            )
        if list(loaded.feature_names) != feature_names():
            raise IncompatibleModelError(
                f"model version {loaded.version} expects other feature columns than the catalogue"
            )
        return cls(loaded.model, loaded.version, loaded.threshold, loaded.feature_set_version, role)


@dataclass(frozen=True)
class Scores:
    """Scores and reasons of a batch, aligned with its rows.

    ``reasons[i]`` lists up to three (feature, value, contribution) with the largest
    positive contributions to row i's fraud log-odds; ``exact[i]`` says whether they
    are TreeSHAP values (alerts) or the path attribution (the other rows).
    """

    score: np.ndarray
    alert: np.ndarray
    reasons: list[list[tuple[str, float, float]]]
    exact: np.ndarray


def _contributions(model: Any, x: np.ndarray, exact: bool) -> np.ndarray | None:
    """Per-feature contributions (rows x features, bias dropped), None for a non-tree model.

    ``exact``: TreeSHAP; otherwise XGBoost's path attribution (Saabas,
    ``approx_contribs``), about 50 times faster and usually the same top features.
    """
    get_booster = getattr(model, "get_booster", None)
    if get_booster is None or len(x) == 0:
        return None
    import xgboost

    matrix = xgboost.DMatrix(x, missing=np.nan, feature_names=feature_names(), nthread=1)
    contribs = get_booster().predict(matrix, pred_contribs=True, approx_contribs=not exact)
    return np.asarray(contribs)[:, :-1]


def top_reasons(
    contribs: np.ndarray | None, x: np.ndarray, k: int = TOP_REASONS
) -> list[list[tuple[str, float, float]]]:
    """The ``k`` features pushing each row's score up the most (positive contributions only)."""
    if contribs is None:
        return [[] for _ in range(len(x))]
    names = feature_names()
    top = np.argsort(-contribs, axis=1, kind="stable")[:, :k]
    out: list[list[tuple[str, float, float]]] = []
    for row, cols in enumerate(top.tolist()):
        out.append(
            [
                (names[c], float(x[row, c]), float(contribs[row, c]))
                for c in cols
                if contribs[row, c] > 0
            ]
        )
    return out


def score(model: ScoringModel, x: np.ndarray, with_reasons: bool = True) -> Scores:
    """Score a float64 matrix whose columns are the catalogue's features, in order.

    Reasons: exact TreeSHAP for the alerts (what an analyst reads), the fast path
    attribution for the other rows; exact TreeSHAP for every row costs about 50
    times more than the scores themselves (see docs/scorer.md, Benchmark).
    """
    if len(x) == 0:
        return Scores(np.zeros(0), np.zeros(0, dtype=bool), [], np.zeros(0, dtype=bool))
    probability = np.asarray(model.model.predict_proba(x)[:, 1], dtype=np.float64)
    alert = probability >= model.threshold
    if not with_reasons:
        return Scores(probability, alert, top_reasons(None, x), np.zeros(len(x), dtype=bool))
    contribs = _contributions(model.model, x, exact=False)
    exact = np.zeros(len(x), dtype=bool)
    if contribs is not None and alert.any():
        contribs[alert] = _contributions(model.model, x[alert], exact=True)
        exact = alert.copy()
    return Scores(probability, alert, top_reasons(contribs, x), exact)
