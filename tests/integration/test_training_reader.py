"""The point-in-time training reader on the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream.adapters.partitions import ensure_days
from fraudstream.adapters.postgres import (
    connect,
    migrate,
    read_training_window,
    scratch_database,
    upsert_labels,
)
from fraudstream.cli.train import read_table
from fraudstream.schema import Label, arrow_schema
from fraudstream.settings import PostgresSettings, Settings

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 3, 1, tzinfo=UTC)
TX_COLUMNS = (
    "transaction_id, event_time, card_id, merchant_id, amount, currency, lat, schema_version"
)


@pytest.fixture
def fresh_database(settings: Settings) -> Iterator[PostgresSettings]:
    with scratch_database(settings.postgres, "test") as database:
        yield database


def _seed(pg: PostgresSettings) -> None:
    """Four transactions a day apart (t0..t3) and one label each, filed 2 days after."""
    migrate(pg)
    with connect(pg) as conn, conn.cursor() as cur:
        ensure_days(cur, [(T0 + timedelta(days=i)).date() for i in range(4)])
        for i in range(4):
            cur.execute(
                f"INSERT INTO transactions_raw ({TX_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 1)",
                (f"t{i}", T0 + timedelta(days=i), "card-1", "m-1", 10.25 + i, "EUR", 48.5),
            )
        labels = [
            Label(f"t{i}", i % 2 == 1, T0 + timedelta(days=i + 2), "chargeback", None)
            for i in range(4)
        ]
        upsert_labels(conn, labels)


def test_window_and_label_cutoff(fresh_database: PostgresSettings) -> None:
    _seed(fresh_database)
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)
    cutoff = T0 + timedelta(days=3, hours=12)  # t1's label (day 3) is known, t2's (day 4) not
    txns, labels = read_training_window(fresh_database, start, end, cutoff)
    assert txns["transaction_id"].tolist() == ["t1", "t2"]
    assert txns["amount"].tolist() == [11.25, 12.25]
    assert labels["transaction_id"].tolist() == ["t1"]
    assert labels["label_time"].tolist() == [pd.Timestamp(T0 + timedelta(days=3))]
    later = read_training_window(fresh_database, start, end, T0 + timedelta(days=4))[1]
    assert later["transaction_id"].tolist() == ["t1", "t2"]


def test_frames_match_what_training_reads_from_parquet(
    fresh_database: PostgresSettings,
    tmp_path: Path,
) -> None:
    _seed(fresh_database)
    far = T0 + timedelta(days=30)
    txns, labels = read_training_window(fresh_database, T0, far, far)
    for frame, contract in ((txns, "transaction"), (labels, "label")):
        path = tmp_path / f"{contract}.parquet"
        schema = arrow_schema(contract)  # type: ignore[arg-type]
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
        expected = read_table(path)
        assert list(frame.columns) == list(expected.columns)
        assert frame.dtypes.to_dict() == expected.dtypes.to_dict()
        pd.testing.assert_frame_equal(frame, expected)
    assert str(txns["event_time"].dt.tz) == "UTC"
    assert str(labels["label_time"].dt.tz) == "UTC"
    assert txns["currency"].tolist() == ["EUR"] * 4
    assert txns["customer_id"].isna().all()


def test_naive_datetimes_are_refused(fresh_database: PostgresSettings) -> None:
    migrate(fresh_database)
    with pytest.raises(ValueError, match="no time zone"):
        read_training_window(fresh_database, datetime(2026, 3, 1), T0, T0)
