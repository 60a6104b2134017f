"""Versioned migrations on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from pydantic import SecretStr

from fraudstream.adapters.postgres import (
    connect,
    discover_migrations,
    migrate,
    scratch_database,
)
from fraudstream.platform.postgres import PostgresServer
from fraudstream.settings import PostgresSettings, Settings

pytestmark = pytest.mark.services("postgres")

TABLES = {"transactions_raw", "transactions_with_score", "fraud_alerts", "labels", "model_metadata"}


@pytest.fixture
def fresh_database(settings: Settings) -> Iterator[PostgresSettings]:
    """An empty database owned by the platform role, dropped afterwards."""
    with scratch_database(settings.postgres, "test") as database:
        yield database


def _schema(pg: PostgresSettings) -> list[tuple[object, ...]]:
    with connect(pg) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default
               FROM information_schema.columns WHERE table_schema = 'public'
               ORDER BY table_name, ordinal_position"""
        )
        columns = cur.fetchall()
        cur.execute("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
        return columns + cur.fetchall()


def test_migrations_applied_twice_change_nothing(fresh_database: PostgresSettings) -> None:
    first = migrate(fresh_database)
    assert [m.version for m in first] == [m.version for m in discover_migrations()]
    before = _schema(fresh_database)
    assert migrate(fresh_database) == []
    assert _schema(fresh_database) == before
    tables = {row[0] for row in before if isinstance(row[0], str)}
    assert tables >= TABLES


def test_writes_are_upserts_keyed_by_transaction_id(fresh_database: PostgresSettings) -> None:
    migrate(fresh_database)
    upsert = """INSERT INTO labels (transaction_id, is_fraud, label_time, source)
                VALUES (%s, %s, %s, 'chargeback')
                ON CONFLICT (transaction_id) DO UPDATE SET is_fraud = EXCLUDED.is_fraud"""
    with connect(fresh_database) as conn, conn.cursor() as cur:
        for _ in range(3):  # a replayed batch
            cur.execute(upsert, ("t-1", True, "2026-01-01T00:00:00Z"))
        cur.execute("SELECT count(*), bool_and(is_fraud) FROM labels")
        assert cur.fetchone() == (1, True)


def test_the_platform_database_is_migrated(settings: Settings) -> None:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(version) FROM schema_migrations")
        assert cur.fetchone() == (len(discover_migrations()),)


def test_a_scratch_database_drops_with_another_roles_session_in_it(settings: Settings) -> None:
    """Autovacuum workers run as no role; a session of a role the platform role is not
    a member of takes the same privilege check in DROP DATABASE ... WITH (FORCE)."""
    visitor, password = f"visitor_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = PostgresServer(settings).superuser()
    try:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(visitor)),
                (password,),
            )
        with scratch_database(settings.postgres, "test") as database:
            session = psycopg2.connect(
                database.model_copy(update={"user": visitor, "password": SecretStr(password)}).dsn()
            )
            with session.cursor() as cur:
                cur.execute("SELECT current_user")
                assert cur.fetchone() == (visitor,)
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (database.database,))
            assert cur.fetchone() == (0,)
        assert session.closed or _is_cut_off(session)
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(visitor)))
        admin.close()


def _is_cut_off(session: psycopg2.extensions.connection) -> bool:
    try:
        with session.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.OperationalError:
        return True
    return False
