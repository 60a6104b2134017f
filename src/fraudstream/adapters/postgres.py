"""PostgreSQL adapter: connections and versioned schema migrations.

Migrations are ordered SQL files ``NNNN_name.sql`` shipped in the package. Each is
applied once, inside one transaction, under an advisory lock, and recorded with
its checksum in ``schema_migrations``; editing an applied file is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

import psycopg2
import psycopg2.extensions

from fraudstream.settings import PostgresSettings

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 7_201_311  # advisory lock key shared by every migrator of this schema


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The database schema and the migration files disagree."""


def discover_migrations() -> list[Migration]:
    """The package's migrations in version order; versions must be unique and gap-free."""
    folder = resources.files("fraudstream.adapters") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise MigrationError(f"migration versions must be 1..N without gaps, got {found}")
    return found


@contextmanager
def connect(
    settings: PostgresSettings, database: str | None = None
) -> Iterator[psycopg2.extensions.connection]:
    """A connection that commits on success and rolls back on error, then closes."""
    conn = psycopg2.connect(settings.dsn(database))
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def applied_migrations(conn: psycopg2.extensions.connection) -> dict[int, str]:
    """version -> checksum of what this database has applied."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations')")
        row = cur.fetchone()
        if row is None or row[0] is None:
            return {}
        cur.execute("SELECT version, checksum FROM schema_migrations")
        return {int(v): str(c) for v, c in cur.fetchall()}


def migrate(settings: PostgresSettings) -> list[Migration]:
    """Apply pending migrations; returns what was applied (empty when up to date).

    Safe to run concurrently and repeatedly: an advisory lock serialises migrators,
    and applied versions are skipped after their checksum is verified.
    """
    migrations = discover_migrations()
    applied: list[Migration] = []
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = applied_migrations(conn)
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was edited after "
                        "it was applied; add a new migration instead"
                    )
                continue
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied.append(migration)
    return applied
