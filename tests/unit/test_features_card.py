"""Per-card features on hand-computed sequences: windows, edges, expiry, missing fields."""

from __future__ import annotations

import math

import pytest

from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import CARD_FEATURES, DAY, HOUR
from fraudstream.features.events import TxnEvent

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z, a Tuesday
NAMES = [spec.name for spec in CARD_FEATURES]


def txn(
    seconds: float,
    amount: float,
    merchant: str = "m1",
    category: str | None = "grocery",
    lat: float | None = None,
    lon: float | None = None,
) -> TxnEvent:
    return TxnEvent(f"t{seconds}", T0 + seconds, "card", merchant, amount, category, lat, lon)


def replay(*txns: TxnEvent) -> list[dict[str, float]]:
    state: CardState | None = None
    out = []
    for t in txns:
        state, values = update_card(state, t)
        assert len(values) == len(NAMES)
        out.append(dict(zip(NAMES, values, strict=True)))
    return out


def test_first_transaction_has_no_history() -> None:
    (f,) = replay(txn(0, 40.0))
    assert f["card_count_1h"] == f["card_count_30d"] == 1
    assert f["card_amount_sum_24h"] == f["card_amount_mean_7d"] == 40.0
    for name in ("card_amount_ratio_30d", "card_amount_zscore_30d", "card_seconds_since_prev"):
        assert math.isnan(f[name]), name
    assert f["card_new_merchant_30d"] == 1.0
    assert f["card_new_category_30d"] == 1.0
    assert f["card_distinct_merchants_1h"] == 1.0


def test_windows_include_the_current_and_exclude_exactly_window_old() -> None:
    # 0 s, then 30 min, then exactly 1 h after the first: the first leaves the 1 h window.
    f = replay(txn(0, 10.0), txn(1800, 20.0), txn(3600, 30.0))
    assert f[1]["card_count_1h"] == 2
    assert f[1]["card_amount_sum_1h"] == 30.0
    assert f[2]["card_count_1h"] == 2  # (t-1h, t] excludes the one at t-1h
    assert f[2]["card_amount_sum_1h"] == 50.0
    assert f[2]["card_amount_mean_1h"] == 25.0
    assert f[2]["card_count_24h"] == 3
    assert f[2]["card_amount_sum_24h"] == 60.0
    assert f[2]["card_seconds_since_prev"] == 1800.0


def test_one_second_inside_the_window_still_counts() -> None:
    f = replay(txn(0, 10.0), txn(HOUR - 1, 20.0))
    assert f[1]["card_count_1h"] == 2


def test_ratio_and_zscore_compare_with_earlier_transactions_only() -> None:
    f = replay(txn(0, 10.0), txn(60, 30.0), txn(120, 100.0))
    # earlier: 10, 30 -> mean 20, population std 10
    assert f[2]["card_amount_ratio_30d"] == pytest.approx(5.0)
    assert f[2]["card_amount_zscore_30d"] == pytest.approx(8.0)
    # one earlier transaction: ratio yes, z-score undefined
    assert f[1]["card_amount_ratio_30d"] == pytest.approx(3.0)
    assert math.isnan(f[1]["card_amount_zscore_30d"])


def test_zscore_is_missing_when_all_earlier_amounts_are_equal() -> None:
    f = replay(txn(0, 10.0), txn(60, 10.0), txn(120, 50.0))
    assert math.isnan(f[2]["card_amount_zscore_30d"])
    assert f[2]["card_amount_ratio_30d"] == pytest.approx(5.0)


def test_everything_expires_after_30_days() -> None:
    f = replay(txn(0, 10.0, "m1"), txn(DAY, 20.0, "m2"), txn(31 * DAY - 1, 5.0, "m1"))
    last = f[2]
    assert last["card_count_30d"] == 2  # day 1 is 1 s inside (t-30d, t]; day 0 is out
    assert last["card_amount_sum_30d"] == 25.0
    assert last["card_count_7d"] == 1
    assert last["card_new_merchant_30d"] == 1.0  # m1 was seen 31 days ago: forgotten
    assert last["card_amount_ratio_30d"] == pytest.approx(5.0 / 20.0)
    g = replay(txn(0, 10.0), txn(30 * DAY, 20.0))
    assert math.isnan(g[1]["card_seconds_since_prev"])  # state expired: like a new card
    assert g[1]["card_count_30d"] == 1


def test_distinct_merchants_and_first_time_at_merchant_and_category() -> None:
    f = replay(
        txn(0, 1.0, "a", "grocery"),
        txn(600, 1.0, "b", "grocery"),
        txn(1200, 1.0, "a", "travel"),
        txn(2 * HOUR, 1.0, "c", "travel"),
    )
    assert [x["card_distinct_merchants_1h"] for x in f] == [1, 2, 2, 1]
    assert [x["card_distinct_merchants_24h"] for x in f] == [1, 2, 2, 3]
    assert [x["card_new_merchant_30d"] for x in f] == [1, 1, 0, 1]
    assert [x["card_new_category_30d"] for x in f] == [1, 0, 1, 0]


def test_distance_and_speed_from_previous_located_transaction() -> None:
    # one degree of latitude is about 111.2 km; the middle transaction has no location
    f = replay(
        txn(0, 1.0, lat=10.0, lon=20.0),
        txn(1800, 1.0),
        txn(HOUR, 1.0, lat=11.0, lon=20.0),
        txn(HOUR + 10, 1.0, lat=11.0, lon=20.0),
    )
    assert math.isnan(f[0]["card_distance_km_prev"])
    assert math.isnan(f[1]["card_distance_km_prev"])
    assert f[2]["card_distance_km_prev"] == pytest.approx(111.19, abs=0.01)
    assert f[2]["card_speed_kmh_prev"] == pytest.approx(111.19, abs=0.01)
    assert f[3]["card_distance_km_prev"] == pytest.approx(0.0, abs=1e-9)
    assert f[3]["card_speed_kmh_prev"] == pytest.approx(0.0, abs=1e-6)


def test_speed_uses_a_60_second_floor() -> None:
    f = replay(txn(0, 1.0, lat=0.0, lon=0.0), txn(1, 1.0, lat=1.0, lon=0.0))
    assert f[1]["card_speed_kmh_prev"] == pytest.approx(111.19 * 60, rel=1e-3)


def test_only_required_fields_give_nan_for_optional_features_and_values_elsewhere() -> None:
    f = replay(txn(0, 10.0, category=None), txn(60, 30.0, category=None))
    for name in ("card_new_category_30d", "card_distance_km_prev", "card_speed_kmh_prev"):
        assert math.isnan(f[1][name]), name
    assert f[1]["card_count_1h"] == 2
    assert f[1]["card_amount_ratio_30d"] == pytest.approx(3.0)


def test_state_stays_bounded_and_sums_stay_exact_over_a_long_history() -> None:
    state: CardState | None = None
    values: tuple[float, ...] = ()
    for k in range(5000):  # one transaction per hour for ~208 days
        state, values = update_card(state, txn(k * HOUR, float(k % 7 + 1)))
    assert state is not None
    assert len(state.times) <= 2 * 30 * 24 + 1
    window = [float(k % 7 + 1) for k in range(5000 - 30 * 24, 5000)]
    f = dict(zip(NAMES, values, strict=True))
    assert f["card_count_30d"] == len(window)
    assert f["card_amount_sum_30d"] == pytest.approx(sum(window), rel=1e-12)
    assert f["card_count_24h"] == 24


def test_zero_amount_authorisations_are_counted_over_24h_and_break_no_ratio() -> None:
    # A card-on-file set-up (0.00), a purchase, then a tester's burst of zero-amount probes.
    f = replay(
        txn(0, 0.0, "shop"),
        txn(60, 25.0, "shop"),
        txn(2 * HOUR, 0.0, "a"),
        txn(2 * HOUR + 30, 0.0, "b"),
        txn(DAY + 60, 0.0, "c"),
        txn(DAY + 3 * HOUR, 10.0, "d"),
    )
    assert [r["card_zero_amount_count_24h"] for r in f] == [1, 1, 2, 3, 3, 1]
    first = f[0]
    assert math.isnan(first["card_amount_ratio_30d"])  # no history, not 0 / 0
    assert math.isnan(f[1]["card_amount_ratio_30d"])  # earlier mean 0: no ratio, no inf
    assert f[2]["card_amount_ratio_30d"] == 0.0
    assert f[2]["card_amount_mean_24h"] == pytest.approx(25.0 / 3)
    assert all(not math.isnan(r["card_amount_mean_1h"]) for r in f)
