"""The point-in-time training reader on the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream import training_sets
from fraudstream.adapters.partitions import ensure_days
from fraudstream.adapters.postgres import (
    connect,
    migrate,
    read_training_window,
    scratch_database,
    upsert_labels,
)
from fraudstream.cli.train import read_table
from fraudstream.model.training_set import LABELS_FILE, TRANSACTIONS_FILE, Window
from fraudstream.schema import Label, arrow_schema
from fraudstream.services.retention import apply
from fraudstream.settings import PostgresSettings, Settings
from tests.integration.conftest import scratch_env
from tests.integration.history_support import generated_history, store_history
from tests.lake_support import write_lake

pytestmark = pytest.mark.services("postgres")
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


def test_the_lake_and_postgres_give_the_same_training_set(
    settings: Settings, tmp_path: Path
) -> None:
    """One history in PostgreSQL and in the lake (written twice, as a replay would): the
    extracts of a window both hold are the same bytes; retention then sends `auto` to the
    lake, which still gives them."""
    txns, labels = generated_history(seed=31, start=T0, days=6, customers=400)
    lake = tmp_path / "scored"
    third = len(txns) // 3 + 1
    for batch in range(3):
        write_lake(lake, batch, txns.iloc[batch * third : (batch + 1) * third])
    write_lake(lake, 7, txns.iloc[100:200])  # a replayed batch: the same rows again
    as_of = T0 + timedelta(days=5, hours=12)
    window = Window(as_of, 4)
    with scratch_env(settings) as env:
        store_history(env, txns, labels)
        out = {}
        for source in ("postgres", "lake"):
            content = training_sets.extract(
                env, window, str(tmp_path / source), (0, 0), source=source, lake_uri=str(lake)
            )
            assert content["source"] == source
            out[source] = content
        for name in (TRANSACTIONS_FILE, LABELS_FILE):
            pg_bytes = (tmp_path / "postgres" / name).read_bytes()
            assert (tmp_path / "lake" / name).read_bytes() == pg_bytes, name
        assert out["lake"]["transactions"] == out["postgres"]["transactions"] > 1000
        assert out["lake"]["labels"] == out["postgres"]["labels"] > 0
        assert training_sets.chosen_source(env, window, "auto") == "postgres"
        apply(env, (T0 + timedelta(days=5)).date())  # keeps 35 days: nothing dropped yet
        assert training_sets.chosen_source(env, window, "auto") == "postgres"
        kept = env.retention.model_copy(update={"transactions_raw_days": 2})
        apply(replace(env, retention=kept), (T0 + timedelta(days=5)).date())
        assert training_sets.chosen_source(env, window, "auto") == "lake"
        again = training_sets.extract(
            env, window, str(tmp_path / "auto"), (0, 0), lake_uri=str(lake)
        )
        assert again["source"] == "lake"
        assert (tmp_path / "auto" / TRANSACTIONS_FILE).read_bytes() == (
            tmp_path / "postgres" / TRANSACTIONS_FILE
        ).read_bytes()
