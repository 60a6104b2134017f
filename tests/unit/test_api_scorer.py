"""One scoring function for the API and the stream: ``scoring.model.score`` on one row (XGBoost's
C functions) gives what it gives on a micro-batch (``predict_proba``, ``pred_contribs``), for a
calibrated model too; the API's decision is that score on the stream's features; a model of
other columns is refused; the rules decide beside the model as the batch decides it."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost
from xgboost import XGBClassifier

from fraudstream.adapters.online_store import States
from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.api.scoring import LiveRules, Scorer, features_on
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import from_record
from fraudstream.features.merchant import MerchantState, update_merchant
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.calibration import Calibration, calibrated
from fraudstream.rules.decision import decide
from fraudstream.rules.ruleset import parse_rule_set
from fraudstream.schema import Transaction
from fraudstream.scoring.model import ScoringModel, score, top_reasons


def _model(columns: list[str]) -> tuple[XGBClassifier, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(columns)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(scale=0.5, size=400)) > 1
    model = XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=0)
    model.fit(pd.DataFrame(x, columns=columns), y)
    return model, x


def _plain(reasons: list[list[tuple[str, float, float]]]) -> list[list[tuple[str, Any, float]]]:
    """Reasons with a missing value as None (NaN equals nothing, itself included)."""
    return [[(f, None if math.isnan(v) else v, c) for f, v, c in row] for row in reasons]


def test_the_one_row_score_is_predict_probas_and_the_reasons_rank_positive_contributions() -> None:
    model, x = _model(feature_names())
    scoring = ScoringModel(model, "1", 0.5, FEATURE_SET_VERSION)
    assert scoring.one_row is not None  # one row takes XGBoost's C functions
    expected = model.predict_proba(pd.DataFrame(x, columns=feature_names()))[:, 1]
    for i in range(len(x)):
        one = score(scoring, x[i : i + 1])
        assert one.score.tolist() == [float(expected[i])]
        reasons = one.reasons[0]
        assert len(reasons) <= 3
        assert all(c > 0 for _, _, c in reasons)
        assert [c for _, _, c in reasons] == sorted((c for _, _, c in reasons), reverse=True)


@pytest.mark.parametrize(("threshold", "exact"), [(0.0, True), (2.0, False)])
def test_the_reasons_are_the_boosters_own_contributions_exact_and_approximate(
    threshold: float, exact: bool
) -> None:
    # The one-row path calls XGBoost's C functions itself: the contributions must be the very
    # floats Booster.predict gives, TreeSHAP for an alert (every row at threshold 0), the path
    # attribution for a pass (every row above threshold 1).
    model, x = _model(feature_names())
    scoring = ScoringModel(model, "1", threshold, FEATURE_SET_VERSION)
    matrix = xgboost.DMatrix(x, missing=np.nan, nthread=1)
    contribs = model.get_booster().predict(
        matrix, pred_contribs=True, approx_contribs=not exact, validate_features=False
    )[:, :-1]
    for i in range(0, len(x), 7):
        row = x[i : i + 1]
        one = score(scoring, row)
        assert one.exact.tolist() == [exact]
        expected = [(name, c) for name, _, c in top_reasons(contribs[i : i + 1], row)[0]]
        assert [(name, c) for name, _, c in one.reasons[0]] == expected


@pytest.mark.parametrize("calibration", [None, Calibration(a=0.7, b=-2.5)])
def test_one_row_and_a_batch_give_the_same_score_alert_and_reasons(
    calibration: Calibration | None,
) -> None:
    # What the API asks (one row) and what the stream asks (a micro-batch) read the same
    # booster: with the calibration written into it, both serve the calibrated score, on one
    # scale with the threshold, and the same reasons (exact for an alert, approximate for a
    # pass).
    model, x = _model(feature_names())
    if calibration is not None:
        model = calibrated(model, calibration)
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.8))
    scoring = ScoringModel(model, "1", threshold, FEATURE_SET_VERSION)
    batch = score(scoring, x)
    assert batch.alert.any()
    assert not batch.alert.all()
    for i in range(len(x)):
        one = score(scoring, x[i : i + 1])
        assert one.score.tolist() == [float(batch.score[i])]
        assert one.alert.tolist() == [bool(batch.alert[i])]
        assert one.exact.tolist() == [bool(batch.exact[i])]
        assert _plain(one.reasons) == _plain([batch.reasons[i]])
    without = score(scoring, x[:1], with_reasons=False)
    assert without.score.tolist() == [float(batch.score[0])]
    assert without.reasons == [[]]
    assert without.exact.tolist() == [False]


def test_the_apis_decisions_are_the_batch_scores_of_the_same_feature_rows() -> None:
    # POST /score's path end to end (features on the stored states, then the one-row score)
    # against the stream's: the same feature rows scored as one micro-batch.
    data = generate(
        GeneratorConfig(seed=5, start=datetime(2026, 3, 1, tzinfo=UTC), days=2, customers=60),
        id_prefix="one-home",
    )
    records = data.transactions.to_pandas().sort_values(["event_time", "transaction_id"])
    records = records.to_dict("records")
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for record in records[:-40]:
        txn = from_record(record)
        cards[txn.card_id], _ = update_card(cards.get(txn.card_id), txn)
        merchants[txn.merchant_id], _ = update_merchant(merchants.get(txn.merchant_id), txn)
    probes = [from_record(r) for r in records[-40:]]

    def states(txn_card: str, txn_merchant: str) -> States:
        return States(
            copy.deepcopy(cards.get(txn_card)), copy.deepcopy(merchants.get(txn_merchant))
        )

    x = np.asarray(
        [features_on(t, states(t.card_id, t.merchant_id)) for t in probes], dtype=np.float64
    )
    model, _ = _model(feature_names())
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.7))
    scoring = ScoringModel(model, "1", threshold, FEATURE_SET_VERSION)
    batch = score(scoring, x)
    assert batch.alert.any()
    assert not batch.alert.all()
    scorer = Scorer(scoring)
    for i, txn in enumerate(probes):
        decision = scorer.decide(txn, states(txn.card_id, txn.merchant_id))
        assert decision.score == float(batch.score[i])
        assert decision.decision == ("alert" if batch.alert[i] else "pass")
        assert [(r.feature, r.contribution) for r in decision.reason_codes] == [
            (name, c) for name, _, c in batch.reasons[i]
        ]


def test_a_pickled_model_scores_one_row_the_same() -> None:
    model, x = _model(feature_names())
    scoring = ScoringModel(model, "1", 0.5, FEATURE_SET_VERSION)
    copied = pickle.loads(pickle.dumps(scoring))  # noqa: S301 (this test's own bytes)
    assert copied.one_row is not None
    assert copied.one_row is not scoring.one_row
    for i in range(0, len(x), 11):
        row = x[i : i + 1]
        assert score(copied, row).score.tolist() == score(scoring, row).score.tolist()
        assert _plain(score(copied, row).reasons) == _plain(score(scoring, row).reasons)


def test_a_model_trained_on_other_columns_is_refused() -> None:
    model, _ = _model(list(reversed(feature_names())))
    with pytest.raises(IncompatibleModelError, match="other feature columns"):
        ScoringModel(model, "1", 0.5, FEATURE_SET_VERSION)


RULES = parse_rule_set(
    {
        "version": "r9",
        "lists": {"blocked": ["card-b"]},
        "rules": [
            {"name": "blocked", "condition": "card_id in blocked", "outcome": "decline"},
            {"name": "big", "condition": "amount > 500", "outcome": "review", "priority": 1},
            {"name": "ecom_night", "condition": "channel == 'ecom'", "outcome": "review"},
            {"name": "first_use", "condition": "card_count_1h == 1", "outcome": "review"},
            {"name": "vip", "condition": "card_id == 'card-v'", "outcome": "approve"},
        ],
    }
)


def _transactions() -> list[Transaction]:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rows = [
        ("card-a", 20.0, "pos"),
        ("card-b", 20.0, "pos"),
        ("card-a", 900.0, "ecom"),
        ("card-v", 900.0, "ecom"),
        ("card-c", 5.0, None),
    ]
    return [
        Transaction(
            transaction_id=f"t{i}",
            event_time=at + timedelta(minutes=i),
            card_id=card,
            merchant_id="m-1",
            amount=amount,
            currency="EUR",
            merchant_category="5411",
            channel=channel,  # type: ignore[arg-type]
            country="FR",
        )
        for i, (card, amount, channel) in enumerate(rows)
    ]


def test_the_api_decision_with_rules_is_the_batch_decision_of_the_same_rows() -> None:
    model, x = _model(feature_names())
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.5))
    scorer = Scorer(ScoringModel(model, "1", threshold, FEATURE_SET_VERSION))
    live = LiveRules.of(RULES)
    records = _transactions()
    answers = [scorer.decide(from_record(r), States(None, None), r, live) for r in records]
    frame = pd.DataFrame(
        [
            {
                **dataclasses.asdict(r),
                **{k: np.nan if v is None else v for k, v in a.features.items()},
            }
            for r, a in zip(records, answers, strict=True)
        ]
    ).assign(score=[a.score for a in answers])
    batch = decide(RULES, frame, threshold)
    got = [(a.outcome, a.reason, a.fired_rules, a.rules_version) for a in answers]
    expected = [
        (batch.decision[i], batch.reason[i], batch.fired(i), "r9") for i in range(len(records))
    ]
    assert got == expected
    assert {a.outcome for a in answers} >= {"approve", "decline", "review"}
    assert answers[1].reason == "blocked"
    assert answers[3].reason == "vip"


def test_without_rules_the_model_decides_alone() -> None:
    model, x = _model(feature_names())
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.5))
    scorer = Scorer(ScoringModel(model, "1", threshold, FEATURE_SET_VERSION))
    for record in _transactions():
        answer = scorer.decide(from_record(record), States(None, None), record)
        alert = answer.score >= threshold
        assert answer.decision == ("alert" if alert else "pass")
        assert (answer.outcome, answer.reason) == (
            ("review", "model") if alert else ("approve", "")
        )
        assert (answer.fired_rules, answer.rules_version) == ((), None)
