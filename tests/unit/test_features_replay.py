"""The offline builder: point in time, same functions as the stream, only required fields."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import FEATURES, feature_names
from fraudstream.features.events import from_record
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant
from fraudstream.features.replay import attach_labels, build_features, label_events
from fraudstream.features.transaction import transaction_features

START = pd.Timestamp("2026-03-02T08:00:00Z")


def history(rows: list[tuple[str, float, str, str, float]]) -> pd.DataFrame:
    """(transaction_id, minutes after START, card, merchant, amount), required fields only."""
    return pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "event_time": [START + pd.Timedelta(minutes=r[1]) for r in rows],
            "card_id": [r[2] for r in rows],
            "merchant_id": [r[3] for r in rows],
            "amount": [r[4] for r in rows],
            "currency": "EUR",
        }
    )


def labels(rows: list[tuple[str, bool, float]]) -> pd.DataFrame:
    """(transaction_id, is_fraud, minutes after START when known)."""
    return pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "is_fraud": [r[1] for r in rows],
            "fraud_scenario": ["stolen_card" if r[1] else None for r in rows],
            "label_time": [START + pd.Timedelta(minutes=r[2]) for r in rows],
            "source": "chargeback",
        }
    )


TXNS = history(
    [
        ("t1", 0, "c1", "m1", 10.0),
        ("t2", 5, "c2", "m1", 20.0),
        ("t3", 30, "c1", "m1", 30.0),
        ("t4", 60, "c3", "m1", 40.0),
    ]
)


def test_a_label_arriving_after_a_transaction_cannot_change_its_row() -> None:
    without = build_features(TXNS)
    late = build_features(TXNS, labels([("t1", True, 45)]))
    by_id = late.set_index("transaction_id")
    base = without.set_index("transaction_id")
    pd.testing.assert_frame_equal(by_id.loc[["t1", "t2", "t3"]], base.loc[["t1", "t2", "t3"]])
    assert by_id.loc["t4", "merchant_fraud_risk_1d"] == pytest.approx(1 / 4)
    # known exactly at t4's event time: counts (label_time <= event time)
    at = build_features(TXNS, labels([("t1", True, 60)])).set_index("transaction_id")
    assert at.loc["t4", "merchant_fraud_risk_1d"] == pytest.approx(1 / 4)


def test_training_target_uses_only_labels_known_at_the_cut() -> None:
    feats = build_features(TXNS)
    lab = labels([("t1", True, 45), ("t3", True, 600)])
    early = attach_labels(feats, lab, known_at=START + pd.Timedelta(minutes=100))
    final = attach_labels(feats, lab)
    assert early.set_index("transaction_id")["is_fraud"].to_dict() == {
        "t1": 1,
        "t2": 0,
        "t3": 0,
        "t4": 0,
    }
    assert final["is_fraud"].sum() == 2


def test_offline_rows_equal_the_streaming_path_event_by_event() -> None:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "transaction_id": [f"t{i:04d}" for i in range(n)],
            "event_time": START + pd.to_timedelta(np.sort(rng.uniform(0, 40 * 24 * 60, n)), "min"),
            "card_id": rng.choice(["c1", "c2", "c3"], n),
            "merchant_id": rng.choice(["m1", "m2"], n),
            "amount": rng.uniform(1, 200, n).round(2),
            "currency": "EUR",
            "merchant_category": rng.choice(["a", "b", None], n),
            "lat": np.where(rng.uniform(size=n) < 0.5, rng.uniform(40, 50, n), np.nan),
            "lon": rng.uniform(0, 10, n),
        }
    )
    labelled = frame.sample(40, random_state=1)
    verdicts = pd.DataFrame(
        {
            "transaction_id": labelled["transaction_id"],
            "is_fraud": rng.uniform(size=40) < 0.8,
            "fraud_scenario": None,
            "label_time": labelled["event_time"] + pd.to_timedelta(rng.uniform(0, 20, 40), "D"),
            "source": "chargeback",
        }
    )
    offline = build_features(frame, verdicts)
    # The stream's way: one global sequence through the per-entity functions it calls,
    # each label applied to its merchant once its time is reached.
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    queue, streamed = label_events(frame, verdicts), []
    for rec in frame.to_dict("records"):
        txn = from_record(rec)
        while queue and queue[0].label_time <= txn.time:
            label = queue.pop(0)
            merchants[label.merchant_id] = apply_label(merchants.get(label.merchant_id), label)
        cards[txn.card_id], card = update_card(cards.get(txn.card_id), txn)
        merchants[txn.merchant_id], merchant = update_merchant(merchants.get(txn.merchant_id), txn)
        streamed.append((*transaction_features(txn), *card, *merchant))
    np.testing.assert_array_equal(offline[feature_names()].to_numpy(), np.array(streamed))
    assert offline["merchant_fraud_risk_30d"].max() > 0


def test_required_fields_only_build_every_feature_column() -> None:
    out = build_features(TXNS)
    assert list(out.columns) == ["transaction_id", "event_time", "card_id", *feature_names()]
    assert len(out) == 4
    optional = {"card_new_category_30d", "card_distance_km_prev", "card_speed_kmh_prev"}
    for spec in FEATURES:
        column = out[spec.name]
        if spec.name in optional:
            assert column.isna().all(), spec.name
        elif spec.missing == "":
            assert column.notna().all(), spec.name
    assert out.set_index("transaction_id").loc["t3", "card_count_1h"] == 2


def test_rows_come_out_in_event_time_order_whatever_the_input_order() -> None:
    shuffled = TXNS.sample(frac=1.0, random_state=3)
    a = build_features(TXNS)
    b = build_features(shuffled)
    pd.testing.assert_frame_equal(a, b)


def test_naive_event_times_are_refused() -> None:
    naive = TXNS.assign(event_time=TXNS["event_time"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_features(naive)


def test_progress_is_reported_to_the_end() -> None:
    seen: list[int] = []
    build_features(TXNS, on_progress=seen.append)
    assert seen[-1] == 4
    assert all(not math.isnan(x) for x in seen)
