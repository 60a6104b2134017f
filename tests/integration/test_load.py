"""`fraudstream load`: a history into PostgreSQL, as a new deployment seeds its retraining.

Against the real PostgreSQL (a scratch database the CLI is pointed at): the rows the row
policy accepts are stored once, labels keep the latest verdict, a second load changes
nothing, and a refused row is left out and named.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream.adapters.postgres import connect
from fraudstream.generator import GeneratorConfig, generate, write_history
from fraudstream.settings import Settings
from tests.integration.conftest import run_cli, scratch_env

pytestmark = [pytest.mark.services("postgres"), pytest.mark.timeout(300)]

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    with scratch_env(settings) as scratch:
        yield scratch


def _counts(settings: Settings) -> tuple[int, int, int, set[str]]:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT transaction_id) FROM transactions_raw")
        rows, distinct = cur.fetchone()
        cur.execute("SELECT count(*) FROM labels")
        (labels,) = cur.fetchone()
        cur.execute("SELECT DISTINCT source_topic FROM transactions_raw")
        sources = {r[0] for r in cur.fetchall()}
    return rows, distinct, labels, sources


def test_load_stores_a_history_once(env: Settings, tmp_path: Path) -> None:
    data = generate(GeneratorConfig(seed=21, start=START, days=3, customers=200, merchants=300))
    # One row the row policy refuses: an event time a year ahead of now.
    txns = data.transactions
    row = txns.slice(0, 1).to_pylist()[0]
    row.update(
        transaction_id="future-0000000001", event_time=datetime.now(UTC) + timedelta(days=365)
    )
    future = pa.Table.from_pylist([row], schema=txns.schema)
    tx_path, label_path = write_history(data, tmp_path)
    pq.write_table(pa.concat_tables([txns, future]), tx_path)

    first = run_cli("load", "--transactions", str(tx_path), "--labels", str(label_path))
    n, n_labels = txns.num_rows, len(set(data.labels.column("transaction_id").to_pylist()))
    assert f"{n:,} of {n:,} transactions were new" in " ".join(first.stdout.split())
    assert "excluded" in first.stdout  # the refused row is named, not loaded
    assert _counts(env) == (n, n, n_labels, {"load"})

    again = run_cli(
        "load", "--transactions", str(tx_path), "--labels", str(label_path), "--chunk", "500"
    )
    assert f"0 of {n:,} transactions were new" in " ".join(again.stdout.split())
    assert f"0 of {data.labels.num_rows:,} labels new or later" in " ".join(again.stdout.split())
    assert _counts(env) == (n, n, n_labels, {"load"})
