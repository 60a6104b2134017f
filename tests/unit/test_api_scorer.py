"""The API's one-row scorer: the score predict_proba gives, the batch scorer's score, alert and
reasons for a calibrated model too, and a model of other columns refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost
from xgboost import XGBClassifier

from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.api.scoring import Scorer
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.model.calibration import Calibration, calibrated
from fraudstream.scoring.model import ScoringModel, score, top_reasons


def _model(columns: list[str]) -> tuple[XGBClassifier, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(columns)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(scale=0.5, size=400)) > 1
    model = XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=0)
    model.fit(pd.DataFrame(x, columns=columns), y)
    return model, x


def test_the_one_row_score_is_predict_probas_and_the_reasons_rank_positive_contributions() -> None:
    model, x = _model(feature_names())
    scorer = Scorer(model, "1", 0.5, FEATURE_SET_VERSION)
    frame = pd.DataFrame(x, columns=feature_names())
    expected = model.predict_proba(frame)[:, 1]
    for i in range(len(x)):
        row = x[i : i + 1]
        assert scorer.probability(row) == float(expected[i])
        reasons = scorer.reasons(row)
        assert len(reasons) <= 3
        assert all(r.contribution > 0 for r in reasons)
        assert [r.contribution for r in reasons] == sorted(
            (r.contribution for r in reasons), reverse=True
        )


def test_the_reasons_are_the_boosters_own_contributions_exact_and_approximate() -> None:
    # The scorer calls XGBoost's C functions itself: the contributions must be the very
    # floats Booster.predict gives, for TreeSHAP and for the path attribution.
    model, x = _model(feature_names())
    scorer = Scorer(model, "1", 0.5, FEATURE_SET_VERSION)
    booster = model.get_booster()
    for exact in (True, False):
        matrix = xgboost.DMatrix(x, missing=np.nan, nthread=1)
        contribs = booster.predict(
            matrix, pred_contribs=True, approx_contribs=not exact, validate_features=False
        )[:, :-1]
        for i in range(0, len(x), 7):
            row = x[i : i + 1]
            expected = [(name, c) for name, _, c in top_reasons(contribs[i : i + 1], row)[0]]
            got = [(r.feature, r.contribution) for r in scorer.reasons(row, exact=exact)]
            assert got == expected


@pytest.mark.parametrize("calibration", [None, Calibration(a=0.7, b=-2.5)])
def test_the_one_row_path_gives_the_batch_scorers_score_alert_and_reasons(
    calibration: Calibration | None,
) -> None:
    # The stream's score() and the API's C calls read the same booster: with the
    # calibration written into it, both serve the calibrated score, on one scale with
    # the threshold, and the same reasons (exact for an alert, approximate for a pass).
    model, x = _model(feature_names())
    if calibration is not None:
        model = calibrated(model, calibration)
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.8))
    batch = score(ScoringModel(model, "1", threshold, FEATURE_SET_VERSION), x)
    scorer = Scorer(model, "1", threshold, FEATURE_SET_VERSION)
    assert batch.alert.any()
    assert not batch.alert.all()
    for i in range(len(x)):
        row = x[i : i + 1]
        one = scorer.probability(row)
        assert one == float(batch.score[i])
        assert (one >= threshold) == bool(batch.alert[i])
        got = [(r.feature, r.contribution) for r in scorer.reasons(row, exact=bool(batch.alert[i]))]
        assert got == [(name, c) for name, _, c in batch.reasons[i]]


def test_a_model_trained_on_other_columns_is_refused() -> None:
    model, _ = _model(list(reversed(feature_names())))
    with pytest.raises(IncompatibleModelError, match="other feature columns"):
        Scorer(model, "1", 0.5, FEATURE_SET_VERSION)
