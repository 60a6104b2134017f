"""The rule language: what it refuses at load, and what it computes (batch = one row)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.catalogue import feature_names
from fraudstream.rules.decision import batch_columns
from fraudstream.rules.language import ExpressionError, compile_condition
from fraudstream.rules.ruleset import (
    RuleSetError,
    load_rule_set,
    parse_rule_set,
    starter_rule_set,
    vocabulary,
)

WORDS = vocabulary({"blocked": ("string", ("card-1", "card-2")), "codes": ("number", (1.0,))})


def _set(condition: str, **extra: Any) -> dict[str, Any]:
    rule = {"name": "r", "condition": condition, "outcome": "review", **extra}
    return {"version": "t1", "lists": {"blocked": ["card-1", "card-2"]}, "rules": [rule]}


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("card_cnt_1h > 3", "unknown name 'card_cnt_1h'; did you mean card_count_1h"),
        ("amount > 'high'", "cannot compare a number with a string"),
        ("country > 'FR'", "> compares numbers only"),
        ("amount / 0 > 1", "division by zero: amount / 0"),
        ("amount / -0.0 > 1", "division by zero"),
        ("amount.real > 1", "attribute access (amount.real) is not part of the rule language"),
        ("__import__('os') > 1", "calling __import__ is not allowed"),
        ("eval('1') > 1", "calling eval is not allowed"),
        ("(lambda: 1)() > 0", "calling lambda: 1 is not allowed"),
        ("(lambda x: x) == 1", "lambda (lambda x: x) is not part of the rule language"),
        ("__class__ == 1", "names starting with '_' are not allowed"),
        ("amount[0] > 1", "indexing (amount[0]) is not part of the rule language"),
        ("amount if True else 0", "a conditional expression"),
        ("[x for x in blocked]", "a comprehension"),
        ("amount > 1 and card_id", "each side of and/or must be a bool, got a string"),
        ("amount + 1", "the condition is a number, it must be true or false"),
        ("card_id in [1, 2]", "card_id is a string, the list holds numbers"),
        ("card_id in codes", "card_id is a string, the list holds numbers"),
        ("card_id in country", "'in' needs a named list or a literal list"),
        ("blocked == 1", "the list blocked can only follow 'in' or 'not in'"),
        ("amount ** 2 > 1", "only + - * / are allowed"),
        ("amount is None", "'is' and 'is not' are not allowed"),
        ("abs(amount, 1) > 1", "abs(x) takes one argument"),
        ("max(amount) > 1", "max() takes two or more arguments"),
        ("event_time > 1", "unknown name 'event_time'"),
        ("amount > ", "syntax error"),
        ("x := 1", "syntax error"),
    ],
)
def test_a_bad_condition_is_refused_with_its_reason(condition: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=None) as caught:
        compile_condition(condition, WORDS)
    assert problem in str(caught.value)


def test_the_load_error_names_the_file_and_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        'version: "1"\nrules:\n'
        "  - {name: fine, condition: amount > 5, outcome: review}\n"
        "  - {name: broken, condition: card_count_1h / 0 > 5, outcome: decline}\n"
    )
    with pytest.raises(RuleSetError) as caught:
        load_rule_set(path)
    assert caught.value.rule == "broken"
    assert str(caught.value).startswith(f"{path}: rule 'broken': division by zero")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"rules": [{"name": "a", "condition": "amount > 1", "outcome": "review"}]}, "version"),
        ({"version": "1", "rules": []}, "'rules' must be a non-empty list"),
        (_set("amount > 1", outcome="block"), "outcome 'block' must be one of"),
        (_set("amount > 1", priority="high"), "priority 'high' must be an integer"),
        (_set("amount > 1", when="now"), "unknown key(s) when"),
        ({**_set("amount > 1"), "lists": {"amount": ["x"]}}, "already a feature or field"),
        ({**_set("amount > 1"), "lists": {"mixed": ["x", 1]}}, "only strings or only numbers"),
        ({**_set("amount > 1"), "extra": 1}, "unknown key(s) extra"),
        (
            {
                "version": "1",
                "rules": [
                    {"name": "a", "condition": "amount > 1", "outcome": "review"},
                    {"name": "a", "condition": "amount > 2", "outcome": "review"},
                ],
            },
            "rule 'a': the name is used twice",
        ),
    ],
)
def test_a_bad_rule_set_is_one_error(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(document)
    assert problem in str(caught.value)


def test_the_starter_rule_set_loads_and_reads_only_catalogue_and_contract_names() -> None:
    rule_set = starter_rule_set()
    assert rule_set.version == "starter-1"
    assert {r.name for r in rule_set.rules} >= {
        "card_testing_burst",
        "impossible_travel",
        "large_amount_for_card",
        "blocked_card",
    }
    assert rule_set.names <= set(vocabulary().columns)
    assert "card_speed_kmh_prev" in rule_set.names


# One frame covering the missing-value cases: NaN numbers, None strings.
FRAME = pd.DataFrame(
    {
        "amount": [10.0, 0.0, np.nan, 2500.0, 40.0],
        "card_count_1h": [1.0, 6.0, 2.0, np.nan, 0.0],
        "card_amount_ratio_30d": [np.nan, 0.5, 3.0, 40.0, 0.0],
        "country": ["FR", None, "DE", "KP", np.nan],
        "card_id": ["card-1", "card-9", None, "card-2", "card-3"],
        "score": [0.1, 0.9, np.nan, 0.5, 0.0],
    }
)


def _both(condition: str) -> tuple[list[bool], list[bool]]:
    rule_set = parse_rule_set(_set(condition))
    expr = rule_set.rules[0].expr
    vec = np.broadcast_to(np.asarray(expr.vec(batch_columns(rule_set, FRAME))), (len(FRAME),))
    one = [bool(expr.one(row)) for row in FRAME.to_dict("records")]
    return vec.tolist(), one


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # A comparison with a missing value is false, whatever the operator.
        ("card_amount_ratio_30d > 1", [False, False, True, True, False]),
        ("card_amount_ratio_30d != 3", [False, True, False, True, True]),
        ("country != 'FR'", [False, False, True, True, False]),
        ("country not in ['FR']", [False, False, True, True, False]),
        ("card_id in blocked", [True, False, False, True, False]),
        ("card_id not in blocked", [False, True, False, False, True]),
        # not negates the false: a missing value passes a negated test.
        ("not (card_amount_ratio_30d > 1)", [True, True, False, False, True]),
        ("is_missing(card_amount_ratio_30d)", [True, False, False, False, False]),
        ("is_missing(country)", [False, True, False, False, True]),
        ("coalesce(card_amount_ratio_30d, 100) > 30", [True, False, False, True, False]),
        # Arithmetic on a missing value is missing; x / 0 at run time is missing.
        ("amount / card_count_1h > 1", [True, False, False, False, False]),
        ("is_missing(amount / card_count_1h)", [False, False, True, True, True]),
        ("amount * 2 - 1 >= 19", [True, False, False, True, True]),
        ("-amount < -20", [False, False, False, True, True]),
        ("abs(amount - 100) < 91", [True, False, False, False, True]),
        ("max(amount, card_count_1h) >= 6", [True, True, False, True, True]),
        ("min(amount, card_count_1h) < 1", [False, True, False, False, True]),
        ("1 < card_count_1h <= 6", [False, True, True, False, False]),
        ("card_count_1h in [0, 6]", [False, True, False, False, True]),
        ("score >= 0.5 or country == 'KP'", [False, True, False, True, False]),
        ("amount > 5 and not card_id in blocked", [False, False, False, False, True]),
        ("True", [True] * 5),
    ],
)
def test_batch_and_single_row_agree_on_defined_semantics(
    condition: str, expected: list[bool]
) -> None:
    vec, one = _both(condition)
    assert vec == expected
    assert one == expected


def test_batch_and_single_row_agree_on_generated_features() -> None:
    """Every starter rule, on random feature rows with a share of NaN, both paths."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame(
        {name: rng.exponential(5.0, n) * rng.choice([1.0, 400.0], n) for name in feature_names()}
    ).mask(rng.random((n, len(feature_names()))) < 0.2)
    frame["amount"] = rng.choice([0.0, 3.0, 1500.0, 99_000.0], n)
    frame["card_id"] = rng.choice(["c1", "c2"], n)
    frame["merchant_id"] = rng.choice(["m1", "m2"], n)
    frame["country"] = rng.choice(np.array(["FR", "KP", None], dtype=object), n)
    frame["score"] = rng.random(n)
    rule_set = parse_rule_set(
        {
            "version": "p",
            "lists": {"cards": ["c1"], "places": ["KP"]},
            "rules": [
                {"name": r.name, "condition": r.condition, "outcome": r.outcome}
                for r in starter_rule_set().rules
                if "in " not in r.condition
            ]
            + [
                {"name": "listed", "condition": "card_id in cards", "outcome": "approve"},
                {"name": "place", "condition": "country not in places", "outcome": "decline"},
                {
                    "name": "ratio",
                    "condition": "card_amount_sum_1h / card_count_1h > 4 or score > 0.97",
                    "outcome": "review",
                },
            ],
        }
    )
    columns = batch_columns(rule_set, frame)
    rows = frame.to_dict("records")
    for rule in rule_set.rules:
        vec = np.asarray(rule.expr.vec(columns), dtype=bool).tolist()
        assert vec == [bool(rule.expr.one(row)) for row in rows], rule.name
        assert 0 < sum(vec) < n, rule.name  # each rule both fires and not


def test_run_time_division_by_zero_is_missing() -> None:
    expr = compile_condition("is_missing(amount / card_count_1h)", WORDS)
    assert expr.one({"amount": 5.0, "card_count_1h": 0.0}) is True
    assert expr.one({"amount": 5.0, "card_count_1h": 2.0}) is False
    # An absent name reads as missing: the comparison is false.
    assert compile_condition("amount / card_count_1h > 0", WORDS).one({"amount": 1.0}) is False
    quotient = compile_condition("amount / card_count_1h > 0", WORDS).vec(
        {"amount": np.array([1.0, 1.0]), "card_count_1h": np.array([0.0, 2.0])}
    )
    assert quotient.tolist() == [False, True]


def test_pandas_string_columns_with_na_read_as_missing() -> None:
    """A string column of pandas' nullable dtype (pd.NA), as an Arrow-backed read gives."""
    rule_set = parse_rule_set(_set("country != 'FR' or card_id in blocked"))
    frame = pd.DataFrame(
        {
            "country": pd.array(["DE", None, "FR"], dtype="string"),
            "card_id": pd.array([None, "card-1", None], dtype="string"),
        }
    )
    expr = rule_set.rules[0].expr
    assert expr.vec(batch_columns(rule_set, frame)).tolist() == [True, True, False]
    rows = [{"country": pd.NA, "card_id": pd.NA}, {"country": "DE", "card_id": pd.NA}]
    assert [expr.one(row) for row in rows] == [False, True]
