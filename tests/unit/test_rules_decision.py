"""One decision per transaction: the documented precedence, batch and single row alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.catalogue import feature_names
from fraudstream.rules.backtest import backtest, top_k
from fraudstream.rules.decision import (
    PRECEDENCE,
    RuleInputError,
    decide,
    decide_one,
    decide_scored,
)
from fraudstream.rules.ruleset import RuleSet, parse_rule_set

RULES = parse_rule_set(
    {
        "version": "v7",
        "lists": {"allowed": ["card-ok"], "blocked": ["card-bad"]},
        "rules": [
            {"name": "big", "condition": "amount > 1000", "outcome": "review", "priority": 5},
            {"name": "huge", "condition": "amount > 5000", "outcome": "review", "priority": 1},
            {"name": "block", "condition": "card_id in blocked", "outcome": "decline"},
            {"name": "burst", "condition": "card_count_1h >= 5", "outcome": "decline"},
            {"name": "allow", "condition": "card_id in allowed", "outcome": "approve"},
        ],
    }
)
THRESHOLD = 0.5

# (card_id, amount, card_count_1h, score) -> (decision, reason, fired)
CASES = [
    # nothing fires, the model is quiet: approve
    (("card-a", 10.0, 1.0, 0.1), ("approve", "", ())),
    # an allow list beats a decline rule and the model
    (("card-ok", 9000.0, 9.0, 0.99), ("approve", "allow", ("allow", "burst", "huge", "big"))),
    # a decline rule beats the model
    (("card-bad", 10.0, 1.0, 0.99), ("decline", "block", ("block",))),
    # the model beats a review rule (its reason), which still counts as fired
    (("card-a", 2000.0, 1.0, 0.7), ("review", "model", ("big",))),
    # a review rule alone; among two, the lower priority number decides
    (("card-a", 6000.0, 1.0, 0.1), ("review", "huge", ("huge", "big"))),
    # the model alone, at its threshold exactly
    (("card-a", 10.0, 1.0, 0.5), ("review", "model", ())),
    # no score (no model scored the row): the model tier passes
    (("card-a", 10.0, 1.0, np.nan), ("approve", "", ())),
    # a missing feature fires nothing
    (("card-a", 10.0, np.nan, 0.1), ("approve", "", ())),
]


def _frame() -> pd.DataFrame:
    rows = [inputs for inputs, _ in CASES]
    return pd.DataFrame(rows, columns=["card_id", "amount", "card_count_1h", "score"])


def test_rules_are_listed_in_precedence_order() -> None:
    assert [r.name for r in RULES.rules] == ["allow", "block", "burst", "huge", "big"]
    assert PRECEDENCE[0] == "approve rule"


def test_the_batch_follows_the_precedence() -> None:
    got = decide(RULES, _frame(), THRESHOLD)
    assert got.version == "v7"
    for i, (_, (decision, reason, fired)) in enumerate(CASES):
        assert (got.decision[i], got.reason[i], got.fired(i)) == (decision, reason, fired), i
    assert got.fired_lists()[1] == ["allow", "burst", "huge", "big"]


def test_one_row_decides_as_the_batch() -> None:
    for row, (_, (decision, reason, fired)) in zip(_frame().to_dict("records"), CASES, strict=True):
        got = decide_one(RULES, row, THRESHOLD)
        assert (got.decision, got.reason, got.fired, got.version) == (
            decision,
            reason,
            fired,
            "v7",
        )


def test_without_a_model_the_rules_decide_alone() -> None:
    got = decide(RULES, _frame(), None)
    assert got.decision[3] == "review"
    assert got.reason[3] == "big"
    assert got.decision[5] == "approve"
    assert decide_one(
        RULES, {"card_id": "card-a", "amount": 10.0, "score": 0.99}, None
    ).decision == ("approve")


def test_an_optional_field_may_be_absent_a_feature_may_not() -> None:
    country = parse_rule_set(
        {
            "version": "1",
            "rules": [{"name": "c", "condition": "country == 'KP'", "outcome": "decline"}],
        }
    )
    frame = pd.DataFrame({"amount": [1.0], "score": [0.1]})
    assert decide(country, frame, 0.5).decision.tolist() == ["approve"]
    with pytest.raises(RuleInputError, match="card_count_1h"):
        decide(RULES, frame.assign(card_id="x"), 0.5)


def _backtest_frame() -> tuple[RuleSet, pd.DataFrame]:
    rules = parse_rule_set(
        {
            "version": "b1",
            "rules": [
                {"name": "high", "condition": "amount > 100", "outcome": "review"},
                {"name": "never", "condition": "amount < 0", "outcome": "decline"},
            ],
        }
    )
    frame = pd.DataFrame(
        {
            "amount": [500.0, 500.0, 500.0, 5.0, 5.0, 5.0, 5.0, 5.0],
            "score": [0.9, 0.1, 0.2, 0.8, 0.7, 0.1, 0.3, 0.0],
            "is_fraud": [1, 1, 0, 1, 0, 0, 1, 0],
        }
    )
    return rules, frame


def test_backtest_figures_per_rule_and_for_the_set() -> None:
    rules, frame = _backtest_frame()
    result = backtest(rules, frame, threshold=0.5)
    assert (result.rows, result.frauds, result.version) == (8, 4, "b1")
    high = next(line for line in result.rules if line.name == "high")
    assert (high.hits, high.frauds) == (3, 2)
    assert high.precision == pytest.approx(2 / 3)
    assert high.recall == pytest.approx(0.5)
    assert high.alert_rate == pytest.approx(3 / 8)
    assert high.model_overlap == pytest.approx(1 / 3)  # only row 0 is also a model alert
    assert high.beyond_model == 1  # row 1: a fraud the model misses
    never = next(line for line in result.rules if line.name == "never")
    assert never.hits == 0
    assert np.isnan(never.precision)
    totals = {line.name: line for line in result.totals}
    assert totals["model"].hits == 3  # rows 0, 3, 4
    assert totals["model"].recall == pytest.approx(0.5)
    assert totals["model + rules"].hits == 5  # rows 0-4
    assert totals["model + rules"].recall == pytest.approx(0.75)
    # the model alone at 5 alerts: its 5 highest scores (rows 0, 3, 4, 6, 2)
    assert totals["model at the same alert count"].hits == 5
    assert totals["model at the same alert count"].frauds == 3
    assert totals["rules"].hits == 3
    # rows 0-4 review (rules or model), no decline rule fires, rows 5-7 approved
    assert result.outcomes == {"decline": 0, "review": 5, "approve": 3}


def test_backtest_without_a_model_has_no_model_figures() -> None:
    rules, frame = _backtest_frame()
    result = backtest(rules, frame.assign(score=np.nan), threshold=None)
    assert [line.name for line in result.totals] == ["rules"]
    assert result.rules[0].beyond_model is None
    assert np.isnan(result.rules[0].model_overlap)
    assert result.outcomes == {"decline": 0, "review": 3, "approve": 5}  # the rules alone


def test_top_k_takes_the_highest_scores_and_puts_nan_last() -> None:
    flagged = top_k(np.array([0.2, np.nan, 0.9, 0.5]), 2)
    assert flagged.tolist() == [False, False, True, True]
    assert top_k(np.array([np.nan, 0.1]), 2).tolist() == [True, True]
    assert not top_k(np.array([0.3]), 0).any()


def test_scored_vectors_decide_as_the_frame() -> None:
    """The scoring stage's path: the feature matrix, the fields the set reads, the scores."""
    frame = _frame()
    names = feature_names()
    matrix = np.full((len(frame), len(names)), np.nan)
    matrix[:, names.index("card_count_1h")] = frame["card_count_1h"]
    assert RULES.fields == ("amount", "card_id")
    fields = {"card_id": frame["card_id"].tolist(), "amount": frame["amount"].tolist()}
    got = decide_scored(RULES, matrix, fields, frame["score"].to_numpy(), THRESHOLD)
    want = decide(RULES, frame, THRESHOLD)
    assert got.decision.tolist() == want.decision.tolist()
    assert got.reason.tolist() == want.reason.tolist()
    assert got.fired_lists() == want.fired_lists()
    assert got.version == "v7"


def test_without_a_rule_set_the_model_decides_alone() -> None:
    score = np.array([0.1, 0.5, 0.9, np.nan])
    got = decide_scored(None, np.zeros((4, len(feature_names()))), {}, score, THRESHOLD)
    assert got.decision.tolist() == ["approve", "review", "review", "approve"]
    assert got.reason.tolist() == ["", "model", "model", ""]
    assert got.fired_lists() == [[], [], [], []]
    assert got.version is None


def test_one_row_without_a_rule_set_decides_as_a_partition_does() -> None:
    """The API's one-row path and the stream's partitions share the model-alone tier."""
    score = np.array([0.1, THRESHOLD, 0.9, np.nan])
    batch = decide_scored(None, np.zeros((4, len(feature_names()))), {}, score, THRESHOLD)
    one = [decide_one(None, {"score": s}, THRESHOLD) for s in score]
    assert (
        [d.decision for d in one]
        == batch.decision.tolist()
        == [
            "approve",
            "review",
            "review",
            "approve",
        ]
    )
    assert [d.reason for d in one] == batch.reason.tolist()
    assert {(d.fired, d.version) for d in one} == {((), None)}
