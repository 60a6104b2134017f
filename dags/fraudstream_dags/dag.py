"""The settings every fraudstream DAG shares: one definition, so the DAGs cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Param

from fraudstream_dags.config import DagConfig
from fraudstream_dags.intervals import MACROS
from fraudstream_dags.tasks import default_args


def fraudstream_dag(
    dag_id: str,
    *,
    config: DagConfig,
    description: str,
    schedule: str,
    as_of_help: str,
    params: dict[str, Any],
    tags: list[str],
    doc_md: str | None,
) -> DAG:
    """A DAG with the project's defaults: no catch-up, one active run, the shared retries
    and macros, and an ``as_of`` parameter that overrides the data interval in manual runs."""
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(config),
        user_defined_macros=MACROS,
        params={
            "as_of": Param(None, type=["null", "string"], description=as_of_help),
            **params,
        },
        tags=["fraudstream", *tags],
        doc_md=doc_md,
    )
