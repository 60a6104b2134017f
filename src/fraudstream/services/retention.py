"""The hot window: PostgreSQL keeps the last days of each large table, the lake the rest.

``apply`` is what `fraudstream retention` and the ``fraud_retention`` DAG run: it makes the
coming days' partitions (``RetentionSettings.partitions_ahead_days``) and drops, per table,
the day partitions older than its retention (whole partitions, never ``DELETE``), each
drop logged in ``partition_drops``. The cut-off is counted in whole UTC days back from
``today`` (the DAG passes its data interval's end, so a re-run cuts at the same day):
with 35 days kept and ``today`` 2026-03-31, days before 2026-02-25 go. Idempotent: a second
run with the same ``today`` drops nothing and makes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fraudstream.adapters.partitions import PARTITIONED_TABLES, Drop, drop_before, ensure_ahead
from fraudstream.settings import Settings


@dataclass(frozen=True)
class RetentionRun:
    """What one run did: partitions made ahead, partitions dropped, the cut-off per table."""

    made: int
    dropped: list[Drop]
    cutoffs: dict[str, date]


def cutoff(today: date, days: int) -> date:
    """The first UTC day kept when ``days`` days are kept, today included."""
    return today - timedelta(days=days - 1)


def apply(settings: Settings, today: date) -> RetentionRun:
    """Make the partitions ahead, then drop every partition older than its table's retention."""
    kept = settings.retention
    cutoffs = {table: cutoff(today, kept.days(table)) for table in PARTITIONED_TABLES}
    made = ensure_ahead(settings.postgres, today, kept.partitions_ahead_days)
    dropped = [
        drop
        for table, first_kept in cutoffs.items()
        for drop in drop_before(settings.postgres, table, first_kept, kept.days(table))
    ]
    return RetentionRun(made, dropped, cutoffs)
