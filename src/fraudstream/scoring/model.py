"""Scoring of a feature matrix, one row or a micro-batch, with the top reason codes of every score.

``score`` is the one scoring function: the stream calls it on each micro-batch, the API
(``POST /score``) on one row. A micro-batch goes through ``predict_proba`` for the score
(the very call the offline evaluation makes, so scores match it bit for bit) and, for
XGBoost, per-feature SHAP contributions (``pred_contribs``) for the reasons. One row of an
XGBoost model goes straight to XGBoost's C functions (``scoring.one_row``): the same calls
on the same data, so the same floats, at a fraction of the wrapper's cost. The calibration
is written into the registered booster, so both serve the calibrated probability. The
model runs on one thread: Spark already runs one Python worker per core, and the API one
worker per core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.scoring.one_row import OneRow, one_row_path

TOP_REASONS = 3


@dataclass(frozen=True)
class ScoringModel:
    """A model the scorer and the API can serve: its registry version, threshold and role.

    An XGBoost model's booster must have the catalogue's columns (or none): its one-row path
    is built here and refuses others (``IncompatibleModelError``). That path holds library
    handles, so it is not pickled: an unpickled copy builds its own.
    """

    model: Any
    version: str
    threshold: float
    feature_set_version: str
    role: str = "champion"
    one_row: OneRow | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "one_row", one_row_path(self.model, feature_names(), self.version))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "one_row"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

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
    times more than the scores themselves (see docs/scorer.md, Benchmark). One row of
    an XGBoost model takes the one-row path (``scoring.one_row``), with the same result.
    """
    if len(x) == 0:
        return Scores(np.zeros(0), np.zeros(0, dtype=bool), [], np.zeros(0, dtype=bool))
    if len(x) == 1 and model.one_row is not None:
        return _score_one_row(model.one_row, x, model.threshold, with_reasons)
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


def _score_one_row(path: OneRow, x: np.ndarray, threshold: float, with_reasons: bool) -> Scores:
    """``score`` of one row: one matrix for the score and the one kind of contributions the
    row needs (exact for an alert, the path attribution for a pass)."""
    with path.matrix(x) as matrix:
        probability = path.score(matrix)
        alert = probability >= threshold
        contribs = path.contributions(matrix, exact=alert) if with_reasons else None
    exact = alert and with_reasons
    return Scores(
        np.array([probability]), np.array([alert]), top_reasons(contribs, x), np.array([exact])
    )
