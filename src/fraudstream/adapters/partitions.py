"""Day partitions of the large tables: made ahead, listed, dropped whole (never ``DELETE``).

Migration 0005 partitions ``transactions_raw``, ``transactions_with_score`` and
``fraud_alerts`` by the UTC day of ``event_time``, one partition ``<table>_pYYYYMMDD`` per
day, and defines ``ensure_day_partitions`` (idempotent, serialised by an advisory lock,
attaching each new partition without blocking writers). A row whose day has no partition is
refused by PostgreSQL, so every writer makes the days it writes first (``ensure_days``),
and the platform, the scorer's start and the retention job make the coming days ahead
(``ensure_ahead``) so that writers seldom need to.

``drop_day`` detaches a partition ``CONCURRENTLY`` (writers into other days go on) and
drops it, recording the drop in ``partition_drops``; an interrupted detach is finished by
the next call, so dropping is idempotent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from fraudstream.settings import PostgresSettings

PARTITIONED_TABLES = ("transactions_raw", "transactions_with_score", "fraud_alerts")
"""The tables partitioned by day of ``event_time`` (migration 0005)."""

_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class Drop:
    """A day partition removed by retention."""

    table: str
    partition: str
    day: date
    bytes: int
    duration_ms: float


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of an aware datetime: the day partition a row lands in."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(UTC).date()


class SchemaBehindError(RuntimeError):
    """The database predates the day partitions (its migrations are behind this code)."""


def ensure_days(
    cur: psycopg2.extensions.cursor,
    days: Iterable[date],
    tables: Iterable[str] = PARTITIONED_TABLES,
) -> int:
    """Make the partitions of ``days`` that are missing, in the cursor's transaction;
    returns how many were made. Commit soon: the advisory lock is held until then."""
    wanted = sorted(set(days))
    if not wanted:
        return 0
    made = 0
    for table in tables:
        for first, last in _runs(wanted):
            try:
                cur.execute("SELECT ensure_day_partitions(%s, %s, %s)", (table, first, last))
            except psycopg2.errors.UndefinedFunction:
                raise SchemaBehindError(
                    "the database has no day partitions yet: its schema is older than this "
                    "code (migration 5)"
                ) from None
            row = cur.fetchone()
            made += int(row[0]) if row else 0
    return made


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as (first, last) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def ensure_ahead(settings: PostgresSettings, today: date, ahead_days: int) -> int:
    """Make the partitions from yesterday to ``today + ahead_days`` (idempotent); returns
    how many were made. Yesterday too, so events a little late at midnight find theirs."""
    days = [today + timedelta(days=i) for i in range(-1, ahead_days + 1)]
    conn = psycopg2.connect(settings.dsn())
    try:
        with conn, conn.cursor() as cur:
            return ensure_days(cur, days)
    finally:
        conn.close()


def day_partitions(cur: psycopg2.extensions.cursor, table: str) -> list[tuple[str, date]]:
    """(partition name, day) of ``table``'s attached day partitions, oldest first."""
    cur.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = to_regclass(%s) AND NOT i.inhdetachpending""",
        (table,),
    )
    found = []
    for (name,) in cur.fetchall():
        match = _DAY_SUFFIX.search(name)
        if match:
            found.append((name, datetime.strptime(match[1], "%Y%m%d").date()))
    return sorted(found, key=lambda item: item[1])


def _pending_detach(cur: psycopg2.extensions.cursor, table: str) -> list[str]:
    cur.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = to_regclass(%s) AND i.inhdetachpending""",
        (table,),
    )
    return [name for (name,) in cur.fetchall()]


def drop_before(
    settings: PostgresSettings, table: str, cutoff: date, retention_days: int
) -> list[Drop]:
    """Drop ``table``'s day partitions of days before ``cutoff``; returns what was dropped.

    Each partition is detached ``CONCURRENTLY`` (a SHARE UPDATE EXCLUSIVE lock: inserts
    and reads of the other days go on; the detach waits for queries that use the table to
    finish), then dropped, and the drop is logged in ``partition_drops`` with
    ``retention_days``. Idempotent: a second call finds nothing to drop; a detach left
    pending by an interrupted call is finished first.
    """
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table} is not partitioned by day; one of {PARTITIONED_TABLES}")
    conn = psycopg2.connect(settings.dsn())
    conn.autocommit = True  # DETACH ... CONCURRENTLY refuses to run in a transaction block
    dropped = []
    try:
        with conn.cursor() as cur:
            for name in _pending_detach(cur, table):
                cur.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(
                        sql.Identifier(table), sql.Identifier(name)
                    )
                )
            for name, day in day_partitions(cur, table):
                if day < cutoff:
                    dropped.append(_drop_one(cur, table, name, day, retention_days))
    finally:
        conn.close()
    return dropped


def _drop_one(
    cur: psycopg2.extensions.cursor, table: str, name: str, day: date, retention_days: int
) -> Drop:
    start = time.perf_counter()
    cur.execute("SELECT pg_total_relation_size(%s)", (name,))
    row = cur.fetchone()
    size = int(row[0]) if row and row[0] is not None else 0
    cur.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
            sql.Identifier(table), sql.Identifier(name)
        )
    )
    cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    took = (time.perf_counter() - start) * 1000
    cur.execute(
        """INSERT INTO partition_drops
               (table_name, partition_name, day, retention_days, bytes, duration_ms)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (table, name, day, retention_days, size, took),
    )
    return Drop(table, name, day, size, took)


def retained_from(cur: psycopg2.extensions.cursor, table: str) -> tuple[date, int] | None:
    """(first day still held, retention in days) of ``table`` after its latest drop, or None
    when retention never dropped any of its partitions."""
    cur.execute(
        """SELECT day, retention_days FROM partition_drops WHERE table_name = %s
           ORDER BY day DESC, id DESC LIMIT 1""",
        (table,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    day, days = tuple(row.values()) if isinstance(row, dict) else row
    return day + timedelta(days=1), int(days)
