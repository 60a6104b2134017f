"""Time-ordered splits and fraud metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.model.experiment import recent_rows, training_rows
from fraudstream.model.metrics import at_threshold, card_precision_at_k, f2_threshold
from fraudstream.model.split import (
    TimeSplit,
    holdout_rows,
    prequential_folds,
    refit_rows,
    train_rows,
)

D0 = pd.Timestamp("2026-04-01T00:00:00Z")


def rows(spec: list[tuple[str, float, str, int]]) -> pd.DataFrame:
    """(transaction_id, day offset, card, is_fraud)."""
    return pd.DataFrame(
        {
            "transaction_id": [s[0] for s in spec],
            "event_time": [D0 + pd.Timedelta(days=s[1]) for s in spec],
            "card_id": [s[2] for s in spec],
            "is_fraud": [s[3] for s in spec],
        }
    )


def test_train_delay_test_boundaries() -> None:
    split = TimeSplit(D0, train_days=2, delay_days=1, test_days=2)
    frame = rows([(f"t{i}", i * 0.5, "c", 0) for i in range(12)])
    assert list(train_rows(frame, split)["transaction_id"]) == ["t0", "t1", "t2", "t3"]
    labels = pd.DataFrame(columns=["transaction_id", "is_fraud", "label_time"])
    test = holdout_rows(frame, labels, split)
    assert list(test["transaction_id"]) == ["t6", "t7", "t8", "t9"]


def test_the_refit_rows_end_where_the_test_period_starts_with_later_labels() -> None:
    """Training rows carry the labels known at the test start; the refit rows add the
    delay period and carry the labels known at the test end; no refit row is a test
    row, and a label known only after the test end is absent from both."""
    split = TimeSplit(D0, train_days=2, delay_days=1, test_days=2)
    frame = rows([(f"t{i}", i * 0.5, f"c{i}", 0) for i in range(12)])  # days 0 to 5.5
    assert list(refit_rows(frame, split)["transaction_id"]) == [f"t{i}" for i in range(6)]
    labels = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t4", "t5"],
            "is_fraud": [True, True, True, True],
            "label_time": [D0 + pd.Timedelta(days=d) for d in (2.5, 4.0, 4.5, 5.5)],
        }
    )
    features = frame.drop(columns="is_fraud")
    train = training_rows(features, labels, split)  # labels known at day 3
    recent = recent_rows(features, labels, split)  # labels known at day 5
    assert list(train.loc[train["is_fraud"] == 1, "transaction_id"]) == ["t1"]
    assert list(recent.loc[recent["is_fraud"] == 1, "transaction_id"]) == ["t1", "t2", "t4"]
    test_ids = set(holdout_rows(frame, labels, split)["transaction_id"])
    assert test_ids
    assert not test_ids & set(recent["transaction_id"])
    assert (
        recent["event_time"].max()
        < split.test_start
        <= min(frame.set_index("transaction_id").loc[list(test_ids), "event_time"])
    )


def test_cards_known_compromised_before_a_test_day_leave_the_test_set() -> None:
    split = TimeSplit(D0, train_days=1, delay_days=0, test_days=2)
    frame = rows(
        [
            ("a0", 0.5, "A", 1),  # fraud in training, known at day 0.9
            ("a1", 1.2, "A", 1),  # test day 1: A known compromised -> out
            ("b1", 1.3, "B", 1),  # B's fraud known only at day 1.5 -> stays on day 1
            ("b2", 2.1, "B", 0),  # test day 2: B known since 1.5 -> out
            ("c2", 2.2, "C", 0),
        ]
    )
    labels = pd.DataFrame(
        {
            "transaction_id": ["a0", "b1"],
            "is_fraud": [True, True],
            "label_time": [D0 + pd.Timedelta(days=0.9), D0 + pd.Timedelta(days=1.5)],
        }
    )
    assert list(holdout_rows(frame, labels, split)["transaction_id"]) == ["b1", "c2"]


def test_prequential_folds_validate_in_the_future_of_their_training_rows() -> None:
    frame = rows([(f"t{i}", i * 0.25, "c", 0) for i in range(40)])  # 10 days
    folds = prequential_folds(frame["event_time"], n_folds=3, fold_days=2, delay_days=1)
    times = frame["event_time"]
    ends = []
    for train, val in folds:
        assert times.iloc[train].max() + pd.Timedelta(days=1) < times.iloc[val].min()
        ends.append(times.iloc[val].max())
    assert ends == sorted(ends, reverse=True)  # most recent first
    assert len(folds[0][1]) == 8  # 2 days x 4 per day
    with pytest.raises(ValueError, match="prequential fold"):
        prequential_folds(frame["event_time"], n_folds=6, fold_days=2, delay_days=1)


def test_card_precision_at_k_removes_cards_detected_on_earlier_days() -> None:
    frame = rows(
        [
            ("x1", 0.1, "X", 1),
            ("y1", 0.2, "Y", 0),
            ("x2", 1.1, "X", 1),  # X already detected on day 0: removed on day 1
            ("z2", 1.2, "Z", 0),
            ("w2", 1.3, "W", 1),
        ]
    )
    scores = np.array([0.9, 0.1, 0.95, 0.8, 0.2])
    # day 0: top-1 = X (fraud) -> 1.0; day 1 without X: top-1 = Z (genuine) -> 0.0
    assert card_precision_at_k(frame, scores, k=1) == pytest.approx(0.5)
    # day 1 top-2 = Z, W -> 1/2; day 0 top-2 = X, Y -> 1/2
    assert card_precision_at_k(frame, scores, k=2) == pytest.approx(0.5)


def test_f2_threshold_and_metrics_at_threshold() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.85, 0.9])
    threshold, f2 = f2_threshold(y, s)
    assert threshold == pytest.approx(0.4)  # all three frauds, 4 alerts
    m = at_threshold(y, s, threshold)
    assert m["recall"] == 1.0
    assert m["precision"] == pytest.approx(0.75)
    assert m["f2"] == pytest.approx(5 * 0.75 / (4 * 0.75 + 1)) == pytest.approx(f2)
    assert m["alert_rate"] == pytest.approx(4 / 7)
