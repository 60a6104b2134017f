"""fraud_retention, an Airflow DAG: daily, PostgreSQL keeps its hot window and next days.

retention: `fraudstream retention --today <data interval end>`: makes the day partitions
of the coming days (FRAUDSTREAM_RETENTION_PARTITIONS_AHEAD_DAYS) and drops the day
partitions of transactions_raw, transactions_with_score and fraud_alerts older than their
retention (FRAUDSTREAM_RETENTION_<TABLE>_DAYS), whole partitions, never DELETE; each drop
is logged in partition_drops. The day counted from is the data interval's end, so a
retried or re-run interval cuts at the same day and drops nothing more.
"""

from __future__ import annotations

from fraudstream_dags.config import DagConfig
from fraudstream_dags.dag import fraudstream_dag
from fraudstream_dags.intervals import CUTOFF
from fraudstream_dags.tasks import cli_task

config = DagConfig.from_env()

with fraudstream_dag(
    "fraud_retention",
    config=config,
    description="Daily: drop day partitions past the retention, make the coming days'.",
    schedule="30 1 * * *",
    as_of_help="The day counted from (ISO 8601, UTC) for a manual run; empty: the data interval.",
    params={},
    tags=["retention"],
    doc_md=__doc__,
) as dag:
    cli_task(
        config,
        "retention",
        ["retention", "--today", CUTOFF, "--json"],
        doc_md="Drop the partitions past the retention; make the coming days'.",
    )
