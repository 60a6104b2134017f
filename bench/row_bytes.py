"""Bytes PostgreSQL spends per scored transaction, before and after the lean row, one run.

The same scored rows are written twice, each into a fresh scratch database: "before" at
migration 4 with the previous layout (unpartitioned tables, every row's feature vector in
``transactions_with_score.features``), "after" at the current schema through the scorer's
own write path (``scoring.sinks.postgres.write_rows``: day partitions, the feature vector
for alerts and a 1-in-50 sample only). Bytes are ``pg_total_relation_size`` (heap, TOAST
and indexes) summed over each table's partitions, per scored transaction.

Rows: a generated history (``--customers`` x 2 transactions a day for ``--days``), its
features from the offline builder the stream shares, a stand-in score (alerts: the frauds
plus 1 % of the rest), the three largest features as reason codes. Written in batches of
``--batch`` rows, as the scorer's partitions are. Needs a PostgreSQL (the platform's, or
another through FRAUDSTREAM_POSTGRES_*). Prints figures and the ratio; the last line is JSON.

    .venv/bin/python bench/row_bytes.py [--customers 10000] [--days 3]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd
from psycopg2.extras import execute_values

from fraudstream.adapters.partitions import PARTITIONED_TABLES
from fraudstream.adapters.postgres import connect, copy_upsert, migrate, scratch_database
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.replay import build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.schema import Transaction, epoch_us
from fraudstream.scoring.rows import SCORED_SCHEMA, transaction_values
from fraudstream.scoring.sinks.base import Partition
from fraudstream.scoring.sinks.postgres import (
    _ALERTS,
    RAW_COLUMNS,
    SCORED_COLUMNS,
    PostgresSink,
    table_rows,
)
from fraudstream.settings import PostgresSettings, load_settings

NAMES = [f.name for f in SCORED_SCHEMA.fields]
_PREVIOUS_ALERTS = _ALERTS.replace("(transaction_id, event_time)", "(transaction_id)")
_PREVIOUS_SCORED = SCORED_COLUMNS[: SCORED_COLUMNS.index("outcome")]
"""Migration 4's columns: the decision columns came with migration 8."""


def scored_frame(customers: int, days: float, seed: int = 7) -> pd.DataFrame:
    """Generated transactions as the scoring stage hands them to the sinks."""
    config = GeneratorConfig(seed=seed, start=datetime(2026, 3, 1, tzinfo=UTC), days=days,
                             customers=customers, merchants=max(300, customers // 5))  # fmt: skip
    data = generate(config)
    txns, labels = data.transactions.to_pandas(), data.labels.to_pandas()
    features = build_features(txns, labels)
    names = feature_names()
    fields = [f for f in Transaction.__dataclass_fields__ if f in txns.columns]
    records = txns.set_index("transaction_id").loc[features["transaction_id"]].reset_index()
    fraud = set(labels.loc[labels["is_fraud"], "transaction_id"])
    rng = np.random.default_rng(seed)
    rows = []
    pairs = zip(features.itertuples(index=False), records[fields].to_dict("records"), strict=True)
    for i, (row, record) in enumerate(pairs):
        txn = Transaction(**{k: None if v is None or v is pd.NaT or (isinstance(v, float)
                             and np.isnan(v)) else v for k, v in record.items()})  # fmt: skip
        txn = replace(txn, event_time=pd.Timestamp(txn.event_time).to_pydatetime())
        values = np.asarray(row[3:], dtype=np.float64)
        alert = row.transaction_id in fraud or rng.random() < 0.01
        top = [names[j] for j in np.argsort(-np.nan_to_num(np.abs(values)))[:3]]
        out = dict.fromkeys(NAMES)
        out.update(zip(NAMES, transaction_values(txn), strict=False))
        out.update(
            source_partition=i % 12, source_offset=i, ingest_time_us=epoch_us(txn.event_time),
            scored_at_us=epoch_us(txn.event_time) + 350_000,
            score=float(rng.beta(8, 2) if alert else rng.beta(1, 30)), is_alert=alert,
            threshold=0.42, model_version="12", feature_set_version=FEATURE_SET_VERSION,
            reason_codes=orjson.dumps(top).decode(),
            reason_detail=orjson.dumps([{"feature": n, "value": float(values[names.index(n)]),
                                         "contribution": 0.1} for n in top]).decode()
            if alert else None,
            features_json=orjson.dumps({n: None if np.isnan(v) else float(v)
                                        for n, v in zip(names, values, strict=True)}).decode(),
            shadow_score=np.nan, late_event=False,
        )  # fmt: skip
        rows.append(out)
    return pd.DataFrame(rows, columns=NAMES)


def write_previous(pg: PostgresSettings, frame: pd.DataFrame, batch: int) -> None:
    """The previous write: every row's feature vector, keys by transaction_id alone."""
    for start in range(0, len(frame), batch):
        tables = table_rows(frame.iloc[start : start + batch].reset_index(drop=True),
                            "fraud-detector", "transactions", keep=lambda *_: True)  # fmt: skip
        with connect(pg) as conn, conn.cursor() as cur:
            copy_upsert(cur, "transactions_raw", RAW_COLUMNS, tables.raw,
                        "ON CONFLICT (transaction_id) DO NOTHING")  # fmt: skip
            copy_upsert(cur, "transactions_with_score", _PREVIOUS_SCORED,
                        [row[: len(_PREVIOUS_SCORED)] for row in tables.scored],
                        "ON CONFLICT (transaction_id) DO NOTHING")  # fmt: skip
            if tables.alerts:
                execute_values(cur, _PREVIOUS_ALERTS, tables.alerts, page_size=1000)


def write_current(pg: PostgresSettings, frame: pd.DataFrame, batch: int) -> None:
    """The scorer's Postgres sink, one flush per batch."""
    sink = PostgresSink(pg, "fraud-detector", "transactions")
    for start in range(0, len(frame), batch):
        sink.setup()
        sink.write(Partition(scored=frame.iloc[start : start + batch].reset_index(drop=True)))
        sink.flush()


def table_bytes(pg: PostgresSettings) -> dict[str, int]:
    """Heap, TOAST and index bytes of each table, summed over its partitions."""
    with connect(pg) as conn, conn.cursor() as cur:
        sizes = {}
        for table in PARTITIONED_TABLES:
            cur.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                "FROM pg_partition_tree(%s) WHERE isleaf AND relid <> %s::regclass",
                (table, table),
            )
            partitions = int(cur.fetchone()[0])
            cur.execute("SELECT pg_total_relation_size(%s)", (table,))
            sizes[table] = partitions + int(cur.fetchone()[0])  # one of the two is 0
    return sizes


def index_bytes(pg: PostgresSettings) -> dict[str, int]:
    """Bytes of each index of the three tables (a partitioned index: its partitions')."""
    with connect(pg) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT i.indexrelid::regclass::text,
                      pg_relation_size(i.indexrelid) + coalesce((
                          SELECT sum(pg_relation_size(t.relid))
                          FROM pg_partition_tree(i.indexrelid) t
                          WHERE t.isleaf AND t.relid <> i.indexrelid), 0)
               FROM pg_index i WHERE i.indrelid = ANY(%s::regclass[])""",
            (list(PARTITIONED_TABLES),),
        )
        return {name: int(size) for name, size in cur.fetchall()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=3000)
    args = parser.parse_args()
    settings = load_settings()
    began = time.perf_counter()
    frame = scored_frame(args.customers, args.days)
    n, alerts = len(frame), int(frame["is_alert"].sum())
    print(f"{n:,} scored transactions, {alerts:,} alerts ({alerts / n:.2%}), built in "
          f"{time.perf_counter() - began:.0f} s")  # fmt: skip
    results: dict[str, dict[str, int]] = {}
    indexes: dict[str, dict[str, int]] = {}
    for name, upto, write in (("before", 4, write_previous), ("after", None, write_current)):
        with scratch_database(settings.postgres, "bench") as pg:
            migrate(pg, upto=upto)
            write(pg, frame, args.batch)
            results[name] = table_bytes(pg)
            indexes[name] = index_bytes(pg)
    print(f"{'table':<26}{'before B/tx':>12}{'after B/tx':>12}{'ratio':>8}")
    for table in PARTITIONED_TABLES:
        b, a = results["before"][table] / n, results["after"][table] / n
        print(f"{table:<26}{b:>12.0f}{a:>12.0f}{b / a:>8.2f}")
    before, after = (sum(results[k].values()) / n for k in ("before", "after"))
    for name, found in indexes.items():
        shown = ", ".join(f"{k} {v / n:.0f}" for k, v in sorted(found.items()))
        print(f"indexes {name} (B/tx): {shown}")
    print(f"{'per scored transaction':<26}{before:>12.0f}{after:>12.0f}{before / after:>8.2f}")
    print(json.dumps({"bench": "row_bytes", "rows": n, "alerts": alerts,
                      "bytes_per_tx_before": round(before), "bytes_per_tx_after": round(after),
                      "ratio": round(before / after, 2),
                      "tables": {k: {t: round(v / n) for t, v in r.items()}
                                 for k, r in results.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
