"""Reading the scorer's Parquet lake back: the window's files, each transaction once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from fraudstream.adapters.lake import read_transactions, window_files
from fraudstream.adapters.object_store import Location
from fraudstream.schema import arrow_schema
from fraudstream.settings import S3Settings
from tests.lake_support import write_lake

T0 = datetime(2026, 3, 1, 22, tzinfo=UTC)


def _txn(i: int, hours: float) -> dict[str, object]:
    return {
        "transaction_id": f"t{i}", "event_time": pd.Timestamp(T0 + timedelta(hours=hours)),
        "card_id": "c1", "merchant_id": "m1", "amount": 10.0 + i, "currency": "EUR",
        "customer_id": None, "merchant_category": "5411", "channel": "pos", "country": "FR",
        "lat": 48.8, "lon": 2.3, "device_id": None, "ip": None, "schema_version": 1,
    }  # fmt: skip


def test_a_window_reads_its_days_once_each_in_event_time_order(tmp_path: Path) -> None:
    write_lake(
        tmp_path, 1, pd.DataFrame([_txn(0, -30), _txn(1, 1), _txn(2, 3)])
    )  # days 02-28 .. 03-02
    write_lake(
        tmp_path, 2, pd.DataFrame([_txn(2, 3), _txn(3, 2.5), _txn(4, 30)])
    )  # t2 again (a replay)
    lake = Location(str(tmp_path), S3Settings())
    start, end = T0, T0 + timedelta(hours=26)
    assert [f.split("/")[1] for f in window_files(lake, start, end)] == [
        "date=2026-03-01", "date=2026-03-02", "date=2026-03-02",
    ]  # fmt: skip
    got = read_transactions(lake, start, end)
    assert got["transaction_id"].tolist() == ["t1", "t3", "t2"]
    expected = arrow_schema("transaction").empty_table().to_pandas()
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()  # as PostgreSQL's reader gives
    assert str(got["event_time"].dt.tz) == "UTC"
    assert read_transactions(lake, end, end + timedelta(days=1))["transaction_id"].tolist() == [
        "t4"
    ]
    assert read_transactions(lake, T0 + timedelta(days=9), T0 + timedelta(days=10)).empty
