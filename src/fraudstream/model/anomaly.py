"""Cold start: an IsolationForest anomaly model on the same features, before labels exist.

Scores are normalised by the training range to [0, 1] (1 = the most anomalous
training row) and the threshold is the training-score quantile that alerts on
``target_alert_rate`` of rows. ``AnomalyScorer`` exposes ``predict_proba`` like the
XGBoost model, so the scorer treats both kinds alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline


class AnomalyScorer:
    """A fitted IsolationForest with min-max normalisation of its anomaly scores."""

    def __init__(self, n_estimators: int = 200, max_samples: int = 4096, n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.pipeline: Pipeline | None = None
        self.low = 0.0
        self.high = 1.0

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "n_jobs": self.n_jobs,
        }

    def set_params(self, **params: Any) -> AnomalyScorer:
        for key, value in params.items():
            setattr(self, key, value)
        if self.pipeline is not None and "n_jobs" in params:
            self.pipeline.set_params(forest__n_jobs=params["n_jobs"])
        return self

    def fit(self, x: np.ndarray, y: Any = None) -> AnomalyScorer:
        """Fit on unlabelled rows (NaN allowed: median-imputed); remembers the score range."""
        self.pipeline = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                (
                    "forest",
                    IsolationForest(
                        n_estimators=self.n_estimators,
                        max_samples=min(self.max_samples, len(x)),
                        n_jobs=self.n_jobs,
                        random_state=0,
                    ),
                ),
            ]
        )
        self.pipeline.fit(x)
        raw = self._raw(x)
        self.low, self.high = float(raw.min()), float(raw.max())
        return self

    def _raw(self, x: np.ndarray) -> np.ndarray:
        assert self.pipeline is not None, "fit the scorer first"
        return np.asarray(-self.pipeline.score_samples(x))

    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly score in [0, 1]; rows beyond the training range are clipped."""
        span = self.high - self.low or 1.0
        return np.clip((self._raw(x) - self.low) / span, 0.0, 1.0)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Two columns like a classifier: [1 - score, score]."""
        s = self.score(x)
        return np.column_stack([1.0 - s, s])


def fit_anomaly(x: np.ndarray, target_alert_rate: float) -> tuple[AnomalyScorer, float]:
    """Fit on training rows; the threshold alerts on ``target_alert_rate`` of them."""
    if not 0.0 < target_alert_rate < 1.0:
        raise ValueError(f"target alert rate must be in (0, 1), got {target_alert_rate}")
    scorer = AnomalyScorer(n_jobs=2).fit(x)
    scorer.set_params(n_jobs=1)
    threshold = float(np.quantile(scorer.score(x), 1.0 - target_alert_rate))
    return scorer, threshold
