from __future__ import annotations

import re

from fraudstream.adapters.postgres import discover_migrations

TABLES = ("transactions_raw", "transactions_with_score", "fraud_alerts", "labels", "model_metadata")


def test_versions_are_contiguous_from_one() -> None:
    migrations = discover_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_every_table_has_the_key_that_makes_writes_upserts() -> None:
    sql = "\n".join(m.sql for m in discover_migrations())
    for table in TABLES:
        body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.S)
        assert body is not None, f"{table} is not created"
        if table == "model_metadata":
            assert "PRIMARY KEY (model_name, version)" in body[1]
        else:
            assert re.search(r"transaction_id\s+text PRIMARY KEY", body[1]), table


def test_checksums_differ_per_content() -> None:
    migrations = discover_migrations()
    assert len({m.checksum for m in migrations}) == len(migrations)
    assert all(len(m.checksum) == 64 for m in migrations)
