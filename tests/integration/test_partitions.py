"""Day partitions, the upsert key and retention on the real PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from fraudstream.adapters.partitions import (
    PARTITIONED_TABLES,
    SchemaBehindError,
    day_partitions,
    ensure_ahead,
)
from fraudstream.adapters.postgres import (
    connect,
    discover_migrations,
    insert_transactions,
    migrate,
    scratch_database,
)
from fraudstream.schema import Transaction, epoch_us
from fraudstream.scoring.rows import SCORED_SCHEMA, transaction_values
from fraudstream.scoring.sinks.base import Partition
from fraudstream.scoring.sinks.postgres import PostgresSink
from fraudstream.services.retention import apply
from fraudstream.settings import PostgresSettings, Settings

from .conftest import run_cli, scratch_env

pytestmark = pytest.mark.services("postgres")
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)
NAMES = [f.name for f in SCORED_SCHEMA.fields]


@pytest.fixture
def fresh_database(settings: Settings) -> Iterator[PostgresSettings]:
    with scratch_database(settings.postgres, "test") as database:
        yield database


def _scored_frame(txns: list[Transaction], alert_every: int = 2) -> pd.DataFrame:
    """Rows as the scoring stage hands them to the sinks (``SCORED_SCHEMA``)."""
    rows = []
    for i, txn in enumerate(txns):
        row: dict[str, Any] = dict.fromkeys(NAMES)
        row.update(zip(NAMES, transaction_values(txn), strict=False))
        row.update(
            source_partition=0, source_offset=i, ingest_time_us=epoch_us(txn.event_time),
            scored_at_us=epoch_us(txn.event_time) + 1000, score=0.9 if i % alert_every == 0
            else 0.1, is_alert=i % alert_every == 0, threshold=0.5, model_version="3",
            feature_set_version="v1", reason_codes='["amount"]',
            reason_detail='[{"feature": "amount"}]', features_json='{"amount": 1.0}',
            late_event=False,
        )  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows, columns=NAMES)


def _txns_across_midnight() -> list[Transaction]:
    moments = [MIDNIGHT - timedelta(microseconds=1), MIDNIGHT, MIDNIGHT + timedelta(hours=1)]
    return [
        Transaction(f"t{i}", moment, "card-1", "m-1", 12.5 + i, "EUR", channel="ecom")
        for i, moment in enumerate(moments)
    ]


def _counts(pg: PostgresSettings) -> dict[str, list[tuple[str, str]]]:
    """Per table: (transaction_id, partition it is stored in) of every row."""
    found = {}
    with connect(pg) as conn, conn.cursor() as cur:
        for table in PARTITIONED_TABLES:
            cur.execute(f"SELECT transaction_id, tableoid::regclass::text FROM {table} ORDER BY 1")
            found[table] = cur.fetchall()
    return found


def test_a_batch_replayed_across_midnight_is_stored_once(fresh_database: PostgresSettings) -> None:
    migrate(fresh_database)  # no partitions yet: the sink makes the days it writes
    frame = _scored_frame(_txns_across_midnight())
    for _ in range(2):  # the batch, then its replay (a restarted query, a retried task)
        sink = PostgresSink(fresh_database, "fraud-detector", "transactions")
        sink.setup()
        sink.write(Partition(scored=frame))
        sink.flush()
    stored = _counts(fresh_database)
    expected = [
        ("t0", "transactions_raw_p20260301"),
        ("t1", "transactions_raw_p20260302"),
        ("t2", "transactions_raw_p20260302"),
    ]
    assert stored["transactions_raw"] == expected
    assert stored["transactions_with_score"] == [
        (t, p.replace("raw", "with_score")) for t, p in expected
    ]
    assert stored["fraud_alerts"] == [
        ("t0", "fraud_alerts_p20260301"),
        ("t2", "fraud_alerts_p20260302"),
    ]
    # Loading the same transactions as history changes nothing either.
    rows = [
        {name: getattr(t, name) for name in Transaction.__dataclass_fields__}
        for t in _txns_across_midnight()
    ]
    with connect(fresh_database) as conn:
        assert insert_transactions(conn, rows, "history") == 0


def test_an_alert_verdict_survives_a_replay(fresh_database: PostgresSettings) -> None:
    migrate(fresh_database)
    frame = _scored_frame(_txns_across_midnight())
    sink = PostgresSink(fresh_database, "fraud-detector", "transactions")
    sink.setup()
    sink.write(Partition(scored=frame))
    sink.flush()
    with connect(fresh_database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE fraud_alerts SET status = 'confirmed' WHERE transaction_id = 't0'")
    sink.setup()
    sink.write(Partition(scored=frame))
    sink.flush()
    with connect(fresh_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT transaction_id, status FROM fraud_alerts ORDER BY 1")
        assert cur.fetchall() == [("t0", "confirmed"), ("t2", "open")]


def test_partitions_ahead_are_made_once(fresh_database: PostgresSettings) -> None:
    migrate(fresh_database)
    today = date(2026, 3, 10)
    assert ensure_ahead(fresh_database, today, 3) == 3 * 5  # yesterday .. today + 3
    assert ensure_ahead(fresh_database, today, 3) == 0
    with connect(fresh_database) as conn, conn.cursor() as cur:
        days = [d for _, d in day_partitions(cur, "fraud_alerts")]
    assert days == [today + timedelta(days=i) for i in range(-1, 4)]


def test_a_database_behind_the_partitions_is_named_with_the_fix(
    fresh_database: PostgresSettings,
) -> None:
    """The scorer starts by making partitions ahead: on a database still at migration 4 it
    says what is behind and how to fix it, not a function lookup error."""
    migrate(fresh_database, upto=4)
    with pytest.raises(SchemaBehindError, match="migration 5"):
        ensure_ahead(fresh_database, date(2026, 3, 10), 1)
    migrate(fresh_database)
    assert ensure_ahead(fresh_database, date(2026, 3, 10), 1) == 3 * 3


def test_an_upgraded_database_keeps_its_rows(fresh_database: PostgresSettings) -> None:
    """A database at migration 4 (unpartitioned tables) with rows on two days."""
    migrate(fresh_database, upto=4)
    with connect(fresh_database) as conn, conn.cursor() as cur:
        for i, txn in enumerate(_txns_across_midnight()):
            cur.execute(
                """INSERT INTO transactions_raw (transaction_id, event_time, card_id,
                       merchant_id, amount, currency, channel, source_offset)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                (txn.transaction_id, txn.event_time, txn.card_id, txn.merchant_id,
                 txn.amount, txn.currency, txn.channel, i),
            )  # fmt: skip
            cur.execute(
                """INSERT INTO transactions_with_score (transaction_id, event_time, card_id,
                       merchant_id, amount, score, threshold, is_alert, model_name,
                       model_version, feature_set_version, features, ingest_time, late_event)
                   VALUES (%s, %s, 'card-1', 'm-1', %s, 0.9, 0.5, true, 'fd', '3', 'v1',
                           %s, %s, false)""",
                (txn.transaction_id, txn.event_time, txn.amount,
                 json.dumps({"amount": txn.amount}), txn.event_time),
            )  # fmt: skip
            cur.execute(
                """INSERT INTO fraud_alerts (transaction_id, event_time, card_id, merchant_id,
                       amount, score, threshold, model_version, status, verdict_by)
                   VALUES (%s, %s, 'card-1', 'm-1', %s, 0.9, 0.5, '3', 'rejected', 'ana')""",
                (txn.transaction_id, txn.event_time, txn.amount),
            )
    before = _rows(fresh_database)
    later = [m.version for m in discover_migrations() if m.version > 4]
    assert [m.version for m in migrate(fresh_database)] == later  # 5 partitions the tables
    after = _rows(fresh_database)
    # The same rows, every value kept; the columns later migrations added are null on them.
    added = {t: after[t][0].keys() - before[t][0].keys() for t in after}
    assert {"outcome", "fired_rules", "rules_version"} <= added["transactions_with_score"]
    for table, rows in after.items():
        assert [{k: v for k, v in r.items() if k not in added[table]} for r in rows] == before[
            table
        ]
        assert all(r[k] is None for r in rows for k in added[table]), table
    stored = _counts(fresh_database)
    assert [p for _, p in stored["fraud_alerts"]] == [
        "fraud_alerts_p20260301",
        "fraud_alerts_p20260302",
        "fraud_alerts_p20260302",
    ]
    with connect(fresh_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('transactions_raw_v4')")
        assert cur.fetchone() == (None,)


def _rows(pg: PostgresSettings) -> dict[str, list[Any]]:
    with connect(pg) as conn, conn.cursor() as cur:
        found = {}
        for table in PARTITIONED_TABLES:
            cur.execute(f"SELECT to_jsonb(t) FROM {table} t ORDER BY transaction_id")
            found[table] = [r[0] for r in cur.fetchall()]
        return found


def test_retention_drops_whole_days_once_and_logs_them(settings: Settings) -> None:
    today = date(2026, 3, 31)
    days = [today - timedelta(days=i) for i in range(40)]
    env = {
        "FRAUDSTREAM_RETENTION_TRANSACTIONS_RAW_DAYS": "10",
        "FRAUDSTREAM_RETENTION_TRANSACTIONS_WITH_SCORE_DAYS": "10",
        "FRAUDSTREAM_RETENTION_FRAUD_ALERTS_DAYS": "30",
        "FRAUDSTREAM_RETENTION_PARTITIONS_AHEAD_DAYS": "2",
    }
    with scratch_env(settings, **env) as scoped:
        txns = [
            Transaction(f"t-{d.isoformat()}", datetime(d.year, d.month, d.day, 12, tzinfo=UTC),
                        "card-1", "m-1", 10.0, "EUR")
            for d in days
        ]  # fmt: skip
        sink = PostgresSink(scoped.postgres, "fraud-detector", "transactions")
        sink.setup()
        sink.write(Partition(scored=_scored_frame(txns, alert_every=1)))
        sink.flush()
        first = apply(scoped, today)
        assert first.made == 3 * 2  # today + 1, today + 2 (yesterday and today exist)
        assert sorted({(d.table, len([x for x in first.dropped if x.table == d.table]))
                       for d in first.dropped}) == [
            ("fraud_alerts", 10), ("transactions_raw", 30), ("transactions_with_score", 30)
        ]  # fmt: skip
        with connect(scoped.postgres) as conn, conn.cursor() as cur:
            cur.execute("SELECT min(event_time)::date, count(*) FROM transactions_with_score")
            assert cur.fetchone() == (today - timedelta(days=9), 10)
            cur.execute("SELECT min(event_time)::date, count(*) FROM fraud_alerts")
            assert cur.fetchone() == (today - timedelta(days=29), 30)
            cur.execute(
                "SELECT table_name, count(*), min(day), max(day), min(retention_days) "
                "FROM partition_drops GROUP BY 1 ORDER BY 1"
            )
            assert cur.fetchall() == [
                ("fraud_alerts", 10, days[-1], today - timedelta(days=30), 30),
                ("transactions_raw", 30, days[-1], today - timedelta(days=10), 10),
                ("transactions_with_score", 30, days[-1], today - timedelta(days=10), 10),
            ]
        # Again, through the command the DAG runs: nothing left to drop, nothing to make.
        ran = run_cli("retention", "--today", "2026-03-31T01:30:00+00:00", "--json")
        again = json.loads(ran.stdout)
        assert again["dropped"] == []
        assert again["made"] == 0
        assert again["cutoffs"]["fraud_alerts"] == "2026-03-02"
