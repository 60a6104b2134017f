"""One transaction scored synchronously, with exactly the features the stream computes.

The card's and merchant's current states come from the online store (the stream
publishes them after every micro-batch). The features are computed by the same
``update_card``/``update_merchant``/``transaction_features`` the stream and the
offline builder run, on decoded *copies*: nothing is written back, so a what-if
score never changes the stream's state. A transaction older than its card's latest
one is scored the way the stream scores late data: on the current state.

The model runs in-process on one thread: the booster's prediction on a one-row
``DMatrix`` (the score ``predict_proba`` gives) and ``pred_contribs`` on the same matrix
for the top three reasons (largest positive contributions to the fraud log-odds),
computed as the stream computes them: exact TreeSHAP for an alert (what an analyst
reads), the path attribution (``approx_contribs``, 2.5x cheaper for one row) for a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.adapters.online_store import States
from fraudstream.features.card import update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import TxnEvent
from fraudstream.features.merchant import update_merchant
from fraudstream.features.vector import feature_vector
from fraudstream.scoring.model import IncompatibleModelError, top_reasons


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class Decision:
    transaction_id: str
    score: float
    threshold: float
    decision: str  # "alert" | "pass"
    reason_codes: list[Reason]
    model_version: str
    feature_set_version: str
    features: dict[str, float | None]


def features_on(txn: TxnEvent, states: States) -> tuple[float, ...]:
    """The catalogue-ordered features of ``txn`` on the given states (consumed: pass copies)."""
    _, card = update_card(states.card, txn)
    _, merchant = update_merchant(states.merchant, txn)
    return feature_vector(txn, card, merchant)


class Scorer:
    """A loaded model ready for single-row scoring. Thread-safe (XGBoost predict is).

    An XGBoost model is asked through one ``DMatrix`` per row for both the score and
    the reasons. The matrix carries no feature names and the booster does not compare
    them on each call (reading every name back from the library cost more than the
    attribution itself): the columns are checked against the catalogue once, here.
    """

    def __init__(self, model: Any, version: str, threshold: float, fsv: str) -> None:
        self.model, self.version, self.threshold = model, version, threshold
        self.feature_set_version = fsv
        self.names = feature_names()
        get_booster = getattr(model, "get_booster", None)
        self.booster = get_booster() if get_booster is not None else None
        if self.booster is not None:
            self.booster.set_param({"nthread": 1})
            trained_on = self.booster.feature_names
            if trained_on is not None and list(trained_on) != self.names:
                raise IncompatibleModelError(
                    f"model version {version} expects other feature columns than the catalogue"
                )

    def probability(self, x: np.ndarray) -> float:
        """The fraud probability of one row, as ``predict_proba`` gives it."""
        if self.booster is not None:
            return self._booster_probability(self._matrix(x))
        return float(self.model.predict_proba(x)[0, 1])

    def reasons(self, x: np.ndarray, exact: bool = True) -> list[Reason]:
        """The one row's top reasons, ranked as the stream ranks them.

        ``exact``: TreeSHAP; otherwise the path attribution.
        """
        if self.booster is None:
            return []
        return self._booster_reasons(self._matrix(x), x, exact)

    def decide(self, txn: TxnEvent, states: States) -> Decision:
        values = features_on(txn, states)
        x = np.asarray(values, dtype=np.float64).reshape(1, -1)
        if self.booster is not None:
            matrix = self._matrix(x)
            score = self._booster_probability(matrix)
            alert = score >= self.threshold
            reasons = self._booster_reasons(matrix, x, exact=alert)
        else:
            score = self.probability(x)
            alert = score >= self.threshold
            reasons = []
        return Decision(
            transaction_id=txn.transaction_id,
            score=score,
            threshold=self.threshold,
            decision="alert" if alert else "pass",
            reason_codes=reasons,
            model_version=self.version,
            feature_set_version=FEATURE_SET_VERSION,
            features={n: _nullable(v) for n, v in zip(self.names, values, strict=True)},
        )

    @staticmethod
    def _matrix(x: np.ndarray) -> Any:
        import xgboost

        return xgboost.DMatrix(x, missing=np.nan, nthread=1)

    def _booster_probability(self, matrix: Any) -> float:
        # The same trees on the same float32 inputs as predict_proba's inplace_predict,
        # half its cost here once the matrix exists (a test requires equal scores).
        assert self.booster is not None
        return float(self.booster.predict(matrix, validate_features=False)[0])

    def _booster_reasons(self, matrix: Any, x: np.ndarray, exact: bool) -> list[Reason]:
        assert self.booster is not None
        contribs = self.booster.predict(
            matrix, pred_contribs=True, approx_contribs=not exact, validate_features=False
        )
        contribs = np.asarray(contribs)[:, :-1]
        return [Reason(f, _nullable(v), c) for f, v, c in top_reasons(contribs, x)[0]]


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value
