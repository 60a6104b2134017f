"""Per-merchant counts and fraud risk: windows, label delay and the maturity delay on
hand-computed sequences."""

from __future__ import annotations

import math

import pytest

from fraudstream.features.catalogue import (
    DAY,
    MATURITY_DELAY_S,
    MERCHANT_FEATURES,
    MERCHANT_HISTORY_S,
)
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant

T0 = 1_700_000_000.0
NAMES = [spec.name for spec in MERCHANT_FEATURES]


def txn(txn_id: str, seconds: float) -> TxnEvent:
    return TxnEvent(txn_id, T0 + seconds, f"card-{txn_id}", "m", 10.0)


def fraud(txn_id: str, txn_s: float, label_s: float, is_fraud: bool = True) -> LabelEvent:
    return LabelEvent(txn_id, "m", T0 + txn_s, T0 + label_s, is_fraud)


def step(state: MerchantState | None, event: TxnEvent) -> tuple[MerchantState, dict[str, float]]:
    state, values = update_merchant(state, event)
    return state, dict(zip(NAMES, values, strict=True))


def test_counts_over_1d_7d_30d_with_edges() -> None:
    state = None
    for i, s in enumerate((0.0, DAY / 2, 6 * DAY)):
        state, _ = step(state, txn(f"t{i}", s))
    state, f = step(state, txn("t3", 7 * DAY))
    assert f["merchant_count_1d"] == 1  # t2 is exactly 1 day old: out
    assert f["merchant_count_7d"] == 3  # t0 is exactly 7 days old: out
    assert f["merchant_count_30d"] == 4
    assert f["merchant_fraud_risk_30d"] == 0.0


def test_fraud_risk_counts_only_labels_already_known() -> None:
    state, _ = step(None, txn("a", 0))
    state, _ = step(state, txn("b", 3600))
    state, before = step(state, txn("c", 7200))
    assert before["merchant_fraud_risk_1d"] == 0.0
    state = apply_label(state, fraud("a", 0, 7300))
    state, after = step(state, txn("d", 7400))
    assert after["merchant_count_1d"] == 4
    assert after["merchant_fraud_risk_1d"] == pytest.approx(1 / 4)
    assert after["merchant_fraud_risk_30d"] == pytest.approx(1 / 4)


def test_fraud_risk_leaves_the_window_with_the_fraudulent_transaction() -> None:
    state, _ = step(None, txn("a", 0))
    state = apply_label(state, fraud("a", 0, 600))
    state, f1 = step(state, txn("b", DAY - 1))
    state, f2 = step(state, txn("c", DAY))
    assert f1["merchant_fraud_risk_1d"] == pytest.approx(1 / 2)
    assert f2["merchant_fraud_risk_1d"] == 0.0  # 'a' is exactly 1 day old
    assert f2["merchant_fraud_risk_7d"] == pytest.approx(1 / 3)
    state, f3 = step(state, txn("d", 30 * DAY))
    assert f3["merchant_fraud_risk_30d"] == 0.0
    assert state.fraud_times == [T0]  # still inside the mature 30d window
    state, f4 = step(state, txn("e", MERCHANT_HISTORY_S))
    assert f4["merchant_mature_fraud_risk_30d"] == 0.0  # 'a' is exactly at the horizon
    assert state.fraud_times == []
    assert state.fraud_ids == {}


def test_duplicate_labels_count_once_and_a_non_fraud_verdict_retracts() -> None:
    state, _ = step(None, txn("a", 0))
    state = apply_label(state, fraud("a", 0, 10))
    state = apply_label(state, fraud("a", 0, 20))
    state, f = step(state, txn("b", 30))
    assert f["merchant_fraud_risk_1d"] == pytest.approx(1 / 2)
    state = apply_label(state, fraud("a", 0, 40, is_fraud=False))
    state, g = step(state, txn("c", 50))
    assert g["merchant_fraud_risk_1d"] == 0.0


def test_genuine_labels_and_labels_on_month_old_transactions_change_nothing() -> None:
    state, _ = step(None, txn("a", 0))
    state = apply_label(state, fraud("a", 0, 10, is_fraud=False))
    state = apply_label(state, fraud("old", 10 - MERCHANT_HISTORY_S, 10))
    state, f = step(state, txn("b", 20))
    assert f["merchant_fraud_risk_30d"] == 0.0
    assert state.fraud_ids == {}


def test_state_is_bounded_to_the_horizon() -> None:
    state = None
    hours = int(MERCHANT_HISTORY_S // 3600)
    for k in range(3 * hours):  # one transaction per hour
        state, f = step(state, txn(f"t{k}", k * 3600.0))
    assert state is not None
    assert len(state.times) <= 2 * hours
    assert f["merchant_count_30d"] == 30 * 24
    assert f["merchant_count_1d"] == 24
    assert f["merchant_mature_fraud_risk_30d"] == 0.0


MATURE = MATURITY_DELAY_S


def test_mature_risk_counts_only_transactions_older_than_the_maturity_delay() -> None:
    state, f = step(None, txn("a", 0))
    assert math.isnan(f["merchant_mature_fraud_risk_1d"])  # nothing that old yet
    state = apply_label(state, fraud("a", 0, 2 * DAY))
    for i in range(3):  # recent, unlabelled transactions: no dilution of the mature risk
        state, _ = step(state, txn(f"r{i}", MATURE - 3600 + i))
    state, f = step(state, txn("b", MATURE + 1))
    assert f["merchant_mature_fraud_risk_1d"] == 1.0  # only 'a' is mature, and it is fraud
    assert f["merchant_fraud_risk_30d"] == pytest.approx(1 / 5)  # diluted by the recent ones
    state, f = step(state, txn("c", MATURE + DAY))
    assert math.isnan(f["merchant_mature_fraud_risk_1d"])  # 'a' left it, nothing else is there
    assert f["merchant_mature_fraud_risk_7d"] == 1.0
    state, f = step(state, txn("d", 2 * MATURE))
    assert f["merchant_mature_fraud_risk_1d"] == 0.0  # the three r, now mature, genuine
    assert f["merchant_mature_fraud_risk_30d"] == pytest.approx(1 / 4)  # a and r0-r2, not b


def test_mature_risk_sees_a_label_only_once_it_is_known() -> None:
    state, _ = step(None, txn("a", 0))
    state, f = step(state, txn("b", MATURE + 10))
    assert f["merchant_mature_fraud_risk_7d"] == 0.0
    state = apply_label(state, fraud("a", 0, MATURE + 20))  # slower than the delay
    state, f = step(state, txn("c", MATURE + 30))
    assert f["merchant_mature_fraud_risk_7d"] == 1.0
