"""fraud_monitor: hourly drift and quality of the champion; retrains when a threshold breaks.

monitor -> breach_gate -> trigger_retrain:

- monitor: `fraudstream monitor` for the hour that ended at the data interval's end: PSI of
  every feature and of the score against the champion's training profile, the alert rate,
  AP and CP@100 on matured transactions with the labels known by then; upserted into
  monitoring_metrics (a re-run replaces the window's rows);
- breach_gate: `fraudstream monitor-gate` exits 99 (skipped) when nothing breached;
- trigger_retrain: starts fraud_retrain with the window end as its cutoff. The run id is
  derived from the window, so a retried or re-run window never starts a second retraining.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param

from fraudstream_dags.config import DagConfig
from fraudstream_dags.dag import fraudstream_dag
from fraudstream_dags.intervals import CUTOFF, CUTOFF_KEY
from fraudstream_dags.tasks import cli_task

NO_BREACH_EXIT_CODE = 99
"""`fraudstream monitor-gate`: no threshold crossed in the window."""

config = DagConfig.from_env()

with fraudstream_dag(
    "fraud_monitor",
    config=config,
    description="Hourly PSI, alert rate and label-based quality; triggers fraud_retrain.",
    schedule="0 * * * *",
    as_of_help="Window end (ISO 8601, UTC) for a manual run; empty: the data interval.",
    params={
        "window_hours": Param(1.0, type="number", exclusiveMinimum=0),
        "psi_threshold": Param(0.2, type="number", minimum=0),
        "max_alert_rate": Param(0.05, type="number", minimum=0, maximum=1),
        "min_rows": Param(200, type="integer", minimum=1),
    },
    tags=["monitoring"],
    doc_md=__doc__,
) as dag:
    monitor = cli_task(
        config,
        "monitor",
        [
            "monitor",
            "--window-end",
            CUTOFF,
            "--window-hours",
            "{{ params.window_hours }}",
            "--psi-threshold",
            "{{ params.psi_threshold }}",
            "--max-alert-rate",
            "{{ params.max_alert_rate }}",
            "--min-rows",
            "{{ params.min_rows }}",
            "--json",
        ],
        doc_md="Compute and store the window's metrics.",
    )
    gate = cli_task(
        config,
        "breach_gate",
        ["monitor-gate", "--window-end", CUTOFF],
        skip_on_exit_code=NO_BREACH_EXIT_CODE,
        doc_md="Continue only when a threshold was crossed.",
    )
    trigger = TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id="fraud_retrain",
        trigger_run_id=f"drift__{CUTOFF_KEY}",
        conf={"as_of": CUTOFF, "reason": f"drift in the window ending {CUTOFF}"},
        skip_when_already_exists=True,
        wait_for_completion=False,
        doc_md="Start fraud_retrain once per breached window.",
    )
    monitor >> gate >> trigger
