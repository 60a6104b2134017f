from __future__ import annotations

import re

from fraudstream.adapters.partitions import PARTITIONED_TABLES
from fraudstream.adapters.postgres import discover_migrations

TABLES = ("transactions_raw", "transactions_with_score", "fraud_alerts", "labels", "model_metadata")


def test_versions_are_contiguous_from_one() -> None:
    migrations = discover_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_every_table_has_the_key_that_makes_writes_upserts() -> None:
    sql = "\n".join(m.sql for m in discover_migrations())
    for table in TABLES:
        bodies = re.findall(rf"CREATE TABLE (?:IF NOT EXISTS )?{table} \((.*?)\n\)", sql, re.S)
        assert bodies, f"{table} is not created"
        latest = bodies[-1]  # the table as the last migration that (re)creates it leaves it
        if table == "model_metadata":
            assert "PRIMARY KEY (model_name, version)" in latest
        elif table in PARTITIONED_TABLES:
            # The partition key must be in the key; event_time is part of the transaction.
            assert "PRIMARY KEY (transaction_id, event_time)" in latest, table
            assert re.search(
                rf"{table} \((?:.*?)\n\) PARTITION BY RANGE \(event_time\);", sql, re.S
            )
        else:
            assert re.search(r"transaction_id\s+text PRIMARY KEY", latest), table


def test_checksums_differ_per_content() -> None:
    migrations = discover_migrations()
    assert len({m.checksum for m in migrations}) == len(migrations)
    assert all(len(m.checksum) == 64 for m in migrations)
