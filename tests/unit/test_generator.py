"""The generator: rates as configured, each scenario with its signature, deterministic, no leaks."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream.generator import (
    LABEL_REGIMES,
    SCENARIOS,
    ConfigError,
    Generated,
    GeneratorConfig,
    Incident,
    LabelConfig,
    generate,
    label_regime,
    write_history,
)
from fraudstream.generator.world import CITIES
from fraudstream.schema import Transaction, arrow_schema
from fraudstream.schema.tables import wire_records
from fraudstream.validation import TransactionValidator

CONFIG = GeneratorConfig(seed=7, days=30)
WEEK = pd.Timedelta(days=7)
FX = {c.currency: c.fx for c in CITIES}


@pytest.fixture(scope="module")
def month() -> Generated:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def frame(month: Generated) -> pd.DataFrame:
    df = month.transactions.to_pandas()
    df["scenario"] = month.scenario
    return df


def _scenario(
    month: Generated, frame: pd.DataFrame, name: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[Incident]]:
    """The scenario's fraud rows, the genuine rows and the scenario's incidents (at least one)."""
    incidents = [i for i in month.incidents if i.scenario == name]
    assert incidents, f"the month holds no {name} incident"
    return frame[frame.scenario == name], frame[frame.scenario.isna()], incidents


def _genuine_median(frame: pd.DataFrame) -> pd.Series:
    return frame[frame.scenario.isna()].groupby("card_id").amount.median()


def test_tables_follow_the_contracts_and_carry_no_label(month: Generated) -> None:
    assert month.transactions.schema.equals(arrow_schema("transaction"))
    assert month.labels.schema.equals(arrow_schema("label"))
    assert not {"is_fraud", "fraud_scenario", "label_time"} & set(month.transactions.column_names)
    assert len(month.transactions["transaction_id"].unique()) == month.transactions.num_rows


def test_overall_fraud_rate_matches_the_configuration(frame: pd.DataFrame) -> None:
    rate = frame.scenario.notna().mean()
    assert rate == pytest.approx(CONFIG.fraud_rate, rel=0.02)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_fires_at_its_configured_rate(
    month: Generated, frame: pd.DataFrame, scenario: str
) -> None:
    expected = CONFIG.fraud_rate * CONFIG.normalised_weights()[scenario]
    truth = (frame.scenario == scenario).mean()
    assert truth == pytest.approx(expected, rel=0.2)
    labels = month.labels.to_pandas()
    reported = (labels.fraud_scenario == scenario).sum() / len(frame)
    kept = 1 - CONFIG.labels.under_reporting_rate
    assert reported == pytest.approx(expected * kept, rel=0.2)


def test_scenario_weights_are_configurable() -> None:
    config = GeneratorConfig(
        seed=3, days=10, customers=2000, merchants=400, fraud_rate=0.02,
        scenario_weights={"card_testing": 3.0, "high_amount": 1.0},
    )  # fmt: skip
    data = generate(config)
    counts = pd.Series(data.scenario).value_counts()
    assert set(counts.index) == {"card_testing", "high_amount"}
    assert counts["card_testing"] / counts["high_amount"] == pytest.approx(3.0, rel=0.05)


def test_same_seed_gives_identical_output_and_another_seed_does_not() -> None:
    small = GeneratorConfig(seed=11, days=5, customers=1000, merchants=300)
    a, b = generate(small), generate(small)
    assert a.transactions.equals(b.transactions)
    assert a.labels.equals(b.labels)
    c = generate(replace(small, seed=12))
    assert not a.transactions.column("amount").equals(c.transactions.column("amount"))


def test_transactions_are_in_event_time_order_within_the_period(month: Generated) -> None:
    times = month.transactions.column("event_time").to_pandas()
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp(CONFIG.start)
    assert times.max() < pd.Timestamp(CONFIG.start) + pd.Timedelta(days=CONFIG.days)


def test_every_label_comes_after_its_transaction_and_carries_its_keys(
    month: Generated, frame: pd.DataFrame
) -> None:
    labels = month.labels.to_pandas().merge(
        frame, on="transaction_id", how="left", suffixes=("", "_txn")
    )
    assert labels.event_time_txn.notna().all()
    assert (labels.event_time == labels.event_time_txn).all()
    assert (labels.merchant_id == labels.merchant_id_txn).all()
    assert (labels.label_time > labels.event_time).all()
    assert labels.label_time.is_monotonic_increasing
    fraud = labels[labels.is_fraud]
    assert (fraud.fraud_scenario == fraud.scenario).all()
    cleared = labels[~labels.is_fraud]
    assert cleared.scenario.isna().all()
    assert cleared.fraud_scenario.isna().all()
    assert set(cleared.source) == {"analyst"}


def test_label_delays_and_under_reporting_follow_the_configuration(
    month: Generated, frame: pd.DataFrame
) -> None:
    labels = month.labels.to_pandas().merge(frame, on="transaction_id", suffixes=("", "_txn"))
    fraud = labels[labels.is_fraud]
    under = 1 - len(fraud) / frame.scenario.notna().sum()
    assert under == pytest.approx(CONFIG.labels.under_reporting_rate, abs=0.03)
    delay_days = (fraud.label_time - fraud.event_time).dt.total_seconds() / 86400
    by_source = delay_days.groupby(fraud.source).median()
    assert by_source["chargeback"] == pytest.approx(CONFIG.labels.chargeback_median_days, rel=0.15)
    assert by_source["analyst"] == pytest.approx(CONFIG.labels.analyst_median_days, rel=0.3)
    assert (fraud.source == "analyst").mean() == pytest.approx(
        CONFIG.labels.analyst_share, abs=0.05
    )


def test_the_chargeback_only_regime_has_no_analyst_and_slow_labels() -> None:
    """Statistics over a generated history: every label a fraud chargeback, 7 to 90 days
    late, around a three-week median; the default regime is today's mixed one."""
    assert label_regime("mixed") == LabelConfig()
    config = replace(CONFIG, days=20, customers=4000, labels=label_regime("chargeback-only"))
    data = generate(config)
    labels = data.labels.to_pandas()
    times = data.transactions.select(["transaction_id", "event_time"]).to_pandas()
    labels = labels.merge(times, on="transaction_id", suffixes=("", "_txn"))
    assert len(labels) > 500
    assert set(labels.source) == {"chargeback"}
    assert labels.is_fraud.all()  # no analyst clears genuine transactions either
    days = (labels.label_time - labels.event_time).dt.total_seconds() / 86400
    assert days.min() >= 7.0
    assert days.max() <= 90.0
    assert days.median() == pytest.approx(21.0, rel=0.1)
    assert days.quantile(0.9) > 30.0  # a long tail, weeks after the median
    fraud = pd.Series(data.scenario).notna().sum()
    assert 1 - len(labels) / fraud == pytest.approx(config.labels.under_reporting_rate, abs=0.03)


def test_label_delays_are_capped_at_max_days_and_uncapped_by_default() -> None:
    capped = LabelConfig(chargeback_median_days=30.0, chargeback_sigma=1.0, max_days=40.0)
    data = generate(replace(CONFIG, days=10, customers=2000, labels=capped))
    labels = data.labels.to_pandas().merge(
        data.transactions.select(["transaction_id", "event_time"]).to_pandas(),
        on="transaction_id",
        suffixes=("", "_txn"),
    )
    days = (labels.label_time - labels.event_time).dt.total_seconds() / 86400
    assert days.max() == pytest.approx(40.0)
    assert (days > 39.99).mean() > 0.1  # about a third of the chargebacks hit the cap
    assert math.isinf(LabelConfig().max_days)
    with pytest.raises(ConfigError, match="max_days"):
        LabelConfig(max_days=0.01).check()


def test_an_unknown_label_regime_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        label_regime("slow")
    assert str(raised.value) == "unknown label regime 'slow'; known: mixed, chargeback-only"
    assert list(LABEL_REGIMES) == ["mixed", "chargeback-only"]


def test_card_testing_is_bursts_of_tiny_amounts_across_merchants(
    month: Generated, frame: pd.DataFrame
) -> None:
    fraud = frame[frame.scenario == "card_testing"]
    assert (fraud.amount < 3.0).all()
    assert (fraud.channel == "ecom").all()
    for incident in (i for i in month.incidents if i.scenario == "card_testing"):
        burst = fraud[fraud.card_id == incident.cards[0]]
        burst = burst[burst.event_time >= pd.Timestamp(incident.start_us, unit="us", tz="UTC")]
        burst = burst.head(incident.transactions)
        assert burst.merchant_id.nunique() == len(burst)
        assert burst.event_time.max() - burst.event_time.min() < pd.Timedelta(minutes=30)


def test_zero_amounts_are_card_on_file_set_ups_and_card_testers_probes(
    frame: pd.DataFrame,
) -> None:
    zero = frame[frame.amount == 0.0]
    genuine = frame[frame.scenario.isna()]
    assert set(zero.scenario.dropna()) == {"card_testing"}  # no other scenario sends 0.00
    assert (zero.channel == "ecom").all()  # verifications happen online
    share = (genuine.amount == 0.0).sum() / (genuine.channel == "ecom").sum()
    assert share == pytest.approx(CONFIG.account_verification_rate, rel=0.2)
    testing = frame[frame.scenario == "card_testing"]
    assert (testing.amount == 0.0).mean() == pytest.approx(0.4, abs=0.1)
    off = generate(replace(CONFIG, days=2, account_verification_rate=0.0))
    amounts = off.transactions.column("amount").to_numpy()
    assert not ((amounts == 0.0) & pd.isna(off.scenario)).any()


def test_account_takeover_changes_amount_category_device_and_place(frame: pd.DataFrame) -> None:
    fraud = frame[frame.scenario == "account_takeover"]
    genuine = frame[frame.scenario.isna()]
    home = genuine.groupby("card_id").country.agg(lambda s: s.mode()[0])
    devices = genuine.dropna(subset=["device_id"]).groupby("card_id").device_id.agg(set)
    median = _genuine_median(frame)
    known = fraud[fraud.card_id.isin(median.index)]
    assert len(known) > 0.8 * len(fraud)
    assert (known.amount.to_numpy() >= 5 * median[known.card_id].to_numpy()).mean() > 0.9
    assert (known.country.to_numpy() != home[known.card_id].to_numpy()).all()
    assert (fraud.merchant_category == "5732").all()
    for card, device in zip(fraud.card_id, fraud.device_id, strict=True):
        assert device is not None
        assert device not in devices.get(card, set())


def test_compromised_terminal_cards_were_all_seen_at_the_skimmed_merchant(
    month: Generated, frame: pd.DataFrame
) -> None:
    fraud, genuine, incidents = _scenario(month, frame, "compromised_terminal")
    assert sum(len(i.cards) for i in incidents) >= 2 * len(incidents)
    for incident in incidents:
        start = pd.Timestamp(incident.start_us, unit="us", tz="UTC")
        for card in incident.cards:
            visits = genuine[(genuine.card_id == card) & (genuine.merchant_id == incident.merchant)]
            skimmed = visits[(visits.event_time >= start) & (visits.event_time < start + WEEK)]
            assert len(skimmed) > 0
            misuse = fraud[fraud.card_id == card]
            assert (misuse.event_time > skimmed.event_time.min()).any()
            assert (misuse.merchant_id != incident.merchant).all()
    assert (fraud.channel == "atm").all()


def test_merchant_collusion_is_many_high_amounts_on_unrelated_cards(
    month: Generated, frame: pd.DataFrame
) -> None:
    fraud = frame[frame.scenario == "merchant_collusion"]
    genuine = frame[frame.scenario.isna()]
    typical_eur = (genuine.amount / genuine.currency.map(FX)).median()
    for incident in (i for i in month.incidents if i.scenario == "merchant_collusion"):
        rows = fraud[fraud.merchant_id == incident.merchant]
        assert len(rows) >= min(10, incident.transactions)
        assert rows.card_id.nunique() == len(rows)
        assert (rows.amount / rows.currency.map(FX)).median() >= 5 * typical_eur


def test_laundering_merchant_is_weeks_of_ordinary_online_purchases_at_one_merchant(
    month: Generated, frame: pd.DataFrame
) -> None:
    fraud, genuine, incidents = _scenario(month, frame, "laundering_merchant")
    assert (fraud.channel == "ecom").all()
    for incident in incidents:
        rows = fraud[fraud.merchant_id == incident.merchant]
        assert len(rows) == incident.transactions
        assert rows.card_id.nunique() == len(rows)
        if len(rows) >= 30:  # a whole campaign, not the last one cut short
            assert rows.event_time.max() - rows.event_time.min() >= pd.Timedelta(days=5)
        # ordinary amounts: within the spread of the merchant's category's genuine sales
        same = genuine[genuine.merchant_category == rows.merchant_category.iloc[0]]
        low, high = same.amount.quantile([0.01, 0.99])
        assert rows.amount.between(low / 3, high * 3).mean() > 0.9


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(a))


def test_impossible_travel_needs_a_speed_no_traveller_has(frame: pd.DataFrame) -> None:
    present = frame[frame.lat.notna()].sort_values("event_time")
    speeds = []
    for _, row in frame[frame.scenario == "impossible_travel"].iterrows():
        before = present[(present.card_id == row.card_id) & (present.event_time < row.event_time)]
        before = before[before.scenario.isna()].iloc[-1]
        hours = (row.event_time - before.event_time).total_seconds() / 3600
        speeds.append(_km(before.lat, before.lon, row.lat, row.lon) / hours)
    assert speeds
    assert min(speeds) > 900


def test_high_amount_outliers_dwarf_the_card_holders_habits(frame: pd.DataFrame) -> None:
    fraud = frame[frame.scenario == "high_amount"]
    median = _genuine_median(frame)
    known = fraud[fraud.card_id.isin(median.index)]
    assert len(known) > 0.8 * len(fraud)
    assert (known.amount.to_numpy() >= 10 * median[known.card_id].to_numpy()).all()


def test_genuine_spending_has_a_daily_rhythm(frame: pd.DataFrame) -> None:
    berlin = frame[(frame.country == "DE") & frame.scenario.isna()]
    hours = berlin.event_time.dt.hour.value_counts(normalize=True)
    assert hours[11] > 5 * hours[2]  # 12:00 CET is busy, 03:00 CET is quiet


def test_history_is_written_as_two_parquet_files(month: Generated, tmp_path: Path) -> None:
    tx_path, label_path = write_history(month, tmp_path / "out")
    assert pq.read_schema(tx_path).equals(arrow_schema("transaction"))
    assert pq.read_table(tx_path).equals(month.transactions)
    assert pq.read_table(label_path).equals(month.labels)


@pytest.mark.parametrize(
    ("config", "knob"),
    [
        (GeneratorConfig(days=0), "days"),
        (GeneratorConfig(fraud_rate=0.7), "fraud_rate"),
        (GeneratorConfig(scenario_weights={"phishing": 1.0}), "phishing"),
        (GeneratorConfig(labels=LabelConfig(under_reporting_rate=1.5)), "under_reporting_rate"),
    ],
)
def test_bad_knobs_are_refused_by_name(config: GeneratorConfig, knob: str) -> None:
    with pytest.raises(ConfigError, match=knob):
        generate(config)


def test_fraud_off_means_only_genuine_transactions() -> None:
    data = generate(GeneratorConfig(seed=1, days=2, customers=500, merchants=300, fraud_rate=0))
    assert pd.Series(data.scenario).isna().all()
    assert not np.asarray(data.labels.column("is_fraud")).any()


def test_every_generated_transaction_passes_the_entry_validator(month: Generated) -> None:
    fraud = pa.array(month.scenario != None)  # noqa: E711 (element-wise)
    sample = pa.concat_tables([month.transactions.filter(fraud), month.transactions.slice(0, 5000)])
    validator = TransactionValidator()
    now = datetime(2100, 1, 1, tzinfo=UTC)
    for _time, key, value in wire_records(sample, "transaction"):
        result = validator.validate(value, now)
        assert isinstance(result, Transaction), (result, value)
        assert key.decode() == result.card_id
