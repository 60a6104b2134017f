"""Postgres sink: ``transactions_raw``, ``transactions_with_score`` and ``fraud_alerts``.

Each partition of a micro-batch's scored rows is one database transaction on its
worker's connection: the raw and scored rows are loaded with ``COPY`` into a staging
table and upserted from it (``adapters.postgres.copy_upsert``), the alerts upserted.
Every write is keyed by ``transaction_id``: ``transactions_raw`` ``ON CONFLICT DO
NOTHING``, the other two ``ON CONFLICT DO UPDATE`` (an alert's analyst ``status`` is
kept), so a partition or a whole batch written again changes nothing. That is what
lets ``flush`` retry a partition whose transaction failed on a lost connection: the
transaction rolled back (or committed: the retry then changes nothing), and the retry
runs on a new connection.

The three tables are partitioned by the UTC day of ``event_time`` and keyed by
(``transaction_id``, ``event_time``) (migration 0005): a replayed row carries its event
time, lands in the day partition of its first copy and meets it there. Before writing, a
partition makes the day partitions of its rows in a short transaction of its own
(``adapters.partitions.ensure_days``; no lock when they exist), remembering per worker the
days it has seen, so the write transaction never waits on partition creation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2.extras import execute_values

from fraudstream.adapters.partitions import ensure_days
from fraudstream.adapters.postgres import RAW_CONFLICT, copy_upsert, keeps_features
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.schema import from_epoch_us
from fraudstream.schema.contract import field_names
from fraudstream.scoring.rows import TRANSACTION_COLUMNS, transaction_from
from fraudstream.scoring.sinks.base import Partition, Sink, drop_worker_client, worker_client
from fraudstream.settings import PostgresSettings

# The contract is the one list of a raw transaction's columns (transactions_raw mirrors it).
RAW_COLUMNS = [*field_names("transaction"), "source_topic", "source_partition", "source_offset"]
SCORED_COLUMNS = [
    "transaction_id", "event_time", "card_id", "merchant_id", "amount", "score", "threshold",
    "is_alert", "model_name", "model_version", "feature_set_version", "reason_codes",
    "features", "shadow_score", "shadow_model_version", "scored_at", "ingest_time", "late_event",
    "outcome", "outcome_reason", "fired_rules", "rules_version",
]  # fmt: skip
_SCORED_CONFLICT = """ON CONFLICT (transaction_id, event_time) DO UPDATE SET score = EXCLUDED.score,
   threshold = EXCLUDED.threshold, is_alert = EXCLUDED.is_alert,
   model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version,
   feature_set_version = EXCLUDED.feature_set_version,
   reason_codes = EXCLUDED.reason_codes, features = EXCLUDED.features,
   shadow_score = EXCLUDED.shadow_score, shadow_model_version = EXCLUDED.shadow_model_version,
   scored_at = EXCLUDED.scored_at, ingest_time = EXCLUDED.ingest_time,
   late_event = EXCLUDED.late_event, outcome = EXCLUDED.outcome,
   outcome_reason = EXCLUDED.outcome_reason, fired_rules = EXCLUDED.fired_rules,
   rules_version = EXCLUDED.rules_version"""
_ALERTS = """INSERT INTO fraud_alerts (transaction_id, event_time, card_id, merchant_id,
   amount, score, threshold, model_version, reason_codes, reason_detail,
   ingest_time, scored_at) VALUES %s
   ON CONFLICT (transaction_id, event_time) DO UPDATE SET score = EXCLUDED.score,
   threshold = EXCLUDED.threshold, model_version = EXCLUDED.model_version,
   reason_codes = EXCLUDED.reason_codes, reason_detail = EXCLUDED.reason_detail,
   ingest_time = EXCLUDED.ingest_time, scored_at = EXCLUDED.scored_at"""


def utc_from_us(us: Any) -> datetime | None:
    """Epoch microseconds (UTC) as an aware datetime, exactly (None for a null)."""
    if us is None or pd.isna(us):
        return None
    return from_epoch_us(int(us))


def _optional(value: Any) -> Any:
    return None if value is None or pd.isna(value) else value


class PostgresSink(Sink):
    name: ClassVar[str] = "postgres"

    def __init__(
        self,
        settings: PostgresSettings,
        model_name: str,
        source_topic: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.model_name = model_name
        self.source_topic = source_topic
        self.retry = retry or RetryPolicy()

    def _key(self) -> tuple[str, ...]:
        return ("postgres", self.settings.host, str(self.settings.port), self.settings.database)

    def _connection(self) -> psycopg2.extensions.connection:
        """The worker's connection, a new one when the kept one is closed."""
        conn: psycopg2.extensions.connection = worker_client(
            self._key(), lambda: psycopg2.connect(self.settings.dsn(), connect_timeout=5)
        )
        if conn.closed:
            drop_worker_client(self._key())
            conn = worker_client(
                self._key(), lambda: psycopg2.connect(self.settings.dsn(), connect_timeout=5)
            )
        return conn

    def setup(self) -> None:
        self._rows: list[pd.DataFrame] = []

    def write(self, part: Partition) -> None:
        if part.scored is not None and len(part.scored):
            self._rows.append(part.scored)  # one database transaction per task, in ``flush``

    def flush(self) -> None:
        """The partition in one transaction, retried on a new connection while PostgreSQL
        is unreachable (up to the retry budget)."""
        if not self._rows:
            return
        rows = pd.concat(self._rows, ignore_index=True)
        days = set(rows_days(rows))

        def attempt() -> None:
            conn = self._connection()
            known: set[date] = worker_client(("postgres-days", *self._key()), set)
            if not days <= known:
                with conn, conn.cursor() as cur:  # its own transaction, committed at once
                    ensure_days(cur, days - known)
                known |= days
            try:
                with conn, conn.cursor() as cur:  # committed here, rolled back on error
                    write_rows(cur, rows, self.model_name, self.source_topic)
            except psycopg2.errors.CheckViolation as exc:
                if "no partition" not in str(exc):
                    raise
                # A remembered day whose partition retention dropped since: make it again.
                known.clear()
                with conn, conn.cursor() as cur:
                    ensure_days(cur, days)
                known |= days
                with conn, conn.cursor() as cur:
                    write_rows(cur, rows, self.model_name, self.source_topic)

        def forget(_: BaseException) -> None:
            conn = drop_worker_client(self._key())
            if conn is not None:
                conn.close()  # the next attempt (or the replay) starts on a new connection

        retry(attempt, self.retry, f"PostgreSQL at {self.settings.host}:{self.settings.port}",
              on_failure=forget)  # fmt: skip


def rows_days(rows: pd.DataFrame) -> list[date]:
    """The UTC days of the rows' event times (``event_time_us``): their day partitions."""
    days = pd.to_datetime(rows["event_time_us"], unit="us", utc=True).dt.date
    return list(days.unique())


@dataclass(frozen=True)
class TableRows:
    """One partition's rows for each table: ``RAW_COLUMNS``, ``SCORED_COLUMNS`` and the
    columns of the alerts' ``INSERT`` (``_ALERTS``), in order."""

    raw: list[tuple[Any, ...]]
    scored: list[tuple[Any, ...]]
    alerts: list[tuple[Any, ...]]


def table_rows(
    rows: pd.DataFrame,
    model_name: str,
    source_topic: str,
    keep: Callable[[str, bool], bool] = keeps_features,
) -> TableRows:
    """Scored rows (``SCORED_SCHEMA``) as the three tables' rows.

    The feature vector is stored where ``keep(transaction_id, is_alert)``: by default for
    alerts and a fixed sample of the rest (``adapters.postgres.keeps_features``); the
    Parquet sink writes every row's."""
    txns = [
        transaction_from(v) for v in rows[TRANSACTION_COLUMNS].itertuples(index=False, name=None)
    ]
    ingest = [utc_from_us(v) for v in rows["ingest_time_us"]]
    scored_at = [utc_from_us(v) for v in rows["scored_at_us"]]
    raw = [
        (*(getattr(t, c) for c in RAW_COLUMNS[:-3]), source_topic, int(p), int(o))
        for t, p, o in zip(txns, rows["source_partition"], rows["source_offset"], strict=True)
    ]
    columns = (
        rows["score"], rows["threshold"], rows["is_alert"], rows["model_version"],
        rows["reason_codes"], rows["features_json"], rows["shadow_score"],
        rows["shadow_model_version"], rows["late_event"], rows["outcome"],
        rows["outcome_reason"], rows["fired_rules"], rows["rules_version"],
    )  # fmt: skip
    scored = []
    alerts = []
    for i, (t, values) in enumerate(zip(txns, zip(*columns, strict=True), strict=True)):
        score, threshold, alert, version, reasons, features, shadow, shadow_v, late = values[:9]
        outcome, outcome_reason, fired, rules_version = values[9:]
        scored.append(
            (
                t.transaction_id, t.event_time, t.card_id, t.merchant_id, t.amount,
                float(score), float(threshold), bool(alert), model_name, version,
                FEATURE_SET_VERSION, reasons,
                features if keep(t.transaction_id, bool(alert)) else None,
                _optional(shadow), _optional(shadow_v),
                scored_at[i], ingest[i], bool(late),
                _optional(outcome), _optional(outcome_reason) or None,
                tuple(fired) if fired is not None and len(fired) else None,
                _optional(rules_version),
            )
        )  # fmt: skip
        if alert:
            alerts.append(
                (
                    t.transaction_id, t.event_time, t.card_id, t.merchant_id, t.amount,
                    float(score), float(threshold), version, reasons, rows["reason_detail"][i],
                    ingest[i], scored_at[i],
                )
            )  # fmt: skip
    return TableRows(raw, scored, alerts)


def write_rows(
    cur: psycopg2.extensions.cursor, rows: pd.DataFrame, model_name: str, source_topic: str
) -> None:
    """Upsert scored rows (``SCORED_SCHEMA``) into the three tables, in one transaction."""
    tables = table_rows(rows, model_name, source_topic)
    copy_upsert(cur, "transactions_raw", RAW_COLUMNS, tables.raw, RAW_CONFLICT)
    copy_upsert(cur, "transactions_with_score", SCORED_COLUMNS, tables.scored, _SCORED_CONFLICT)
    if tables.alerts:
        execute_values(cur, _ALERTS, tables.alerts, page_size=1000)
