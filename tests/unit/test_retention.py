"""The hot window's arithmetic: which UTC day a row lands in, which days retention keeps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest

from fraudstream.adapters.partitions import _runs, utc_day
from fraudstream.scoring.sinks.postgres import rows_days
from fraudstream.services.retention import cutoff
from fraudstream.settings import RetentionSettings, SettingsError, _build


def test_a_row_lands_in_the_utc_day_of_its_event_time() -> None:
    late_evening_in_new_york = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_day(late_evening_in_new_york) == date(2026, 3, 2)
    assert utc_day(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == date(2026, 3, 1)
    with pytest.raises(ValueError, match="no time zone"):
        utc_day(datetime(2026, 3, 1))


def test_the_sink_makes_the_days_of_its_rows() -> None:
    us = [
        int(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp() * 1e6),
        int(datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp() * 1e6),
        int(datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp() * 1e6),
    ]
    assert sorted(rows_days(pd.DataFrame({"event_time_us": us}))) == [
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]


def test_days_are_made_in_runs_of_consecutive_days() -> None:
    days = [date(2026, 3, d) for d in (1, 2, 3, 5, 7, 8)]
    assert _runs(days) == [
        (date(2026, 3, 1), date(2026, 3, 3)),
        (date(2026, 3, 5), date(2026, 3, 5)),
        (date(2026, 3, 7), date(2026, 3, 8)),
    ]


def test_retention_keeps_that_many_days_today_included() -> None:
    assert cutoff(date(2026, 3, 31), 35) == date(2026, 2, 25)
    assert cutoff(date(2026, 3, 31), 1) == date(2026, 3, 31)


def test_retention_settings_per_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_RETENTION_FRAUD_ALERTS_DAYS", "400")
    kept = _build(RetentionSettings)
    assert kept.days("fraud_alerts") == 400
    assert kept.days("transactions_raw") == 35
    monkeypatch.setenv("FRAUDSTREAM_RETENTION_TRANSACTIONS_RAW_DAYS", "0")
    with pytest.raises(SettingsError, match="FRAUDSTREAM_RETENTION_TRANSACTIONS_RAW_DAYS"):
        _build(RetentionSettings)
