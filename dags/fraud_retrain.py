"""fraud_retrain: daily at 03:00 UTC and on demand, retrain on the labels known so far.

extract_training_set -> train -> evaluate -> promote, each a `fraudstream` command (a pod on
Kubernetes, a local process in the embedded platform; see fraudstream_dags/tasks.py):

- extract_training_set: transactions and the labels known at the cutoff, point in time,
  from PostgreSQL to s3://<datasets>/training/fraud_retrain/<cutoff>/; skipped (with every
  later task) when too few labels have arrived;
- train: XGBoost on that set, registered in MLflow as @challenger, keyed by the cutoff: a
  retry (or a second run for the same cutoff) reuses the version instead of training again;
- evaluate: challenger beside the champion on the same holdout (its report is in the log);
- promote: the gate; @champion moves only when the challenger wins, the decision is
  published on model_events and recorded in model_promotions and model_metadata, keyed by
  the cutoff so a retry never promotes twice. A losing challenger stays challenger and the
  task succeeds with the refusal's reason in its log.

The cutoff is the end of the data interval (or the `as_of` parameter of a manual run).
"""

from __future__ import annotations

from airflow.sdk import Param

from fraudstream_dags.config import DagConfig
from fraudstream_dags.dag import fraudstream_dag
from fraudstream_dags.intervals import CUTOFF, CUTOFF_KEY
from fraudstream_dags.tasks import cli_task

TOO_FEW_LABELS_EXIT_CODE = 4
"""`fraudstream extract-training-set`: not enough labels (or frauds) before the cutoff."""

config = DagConfig.from_env()
DATASET = f"s3://{config.dataset_bucket}/training/fraud_retrain/{CUTOFF_KEY}"
INPUTS = ["--training-set", f"{DATASET}/"]
REQUEST_KEY = f"fraud_retrain/{CUTOFF_KEY}"
"""Keys the run's registration (`train --run-key`) and promotion (`promote --request-key`)."""

with fraudstream_dag(
    "fraud_retrain",
    config=config,
    description="Retrain the fraud model on labels known at the cutoff; promote it if it wins.",
    schedule="0 3 * * *",
    as_of_help="Cutoff (ISO 8601, UTC) for a manual run; empty: the data interval.",
    params={
        "days": Param(35, type="integer", minimum=7, description="Days of history to train on."),
        "candidates": Param(
            config.retrain_candidates, type="integer", minimum=1, description="Search candidates."
        ),
        "smote": Param(
            config.retrain_smote, type="boolean", description="Run the SMOTE arm of the ablation."
        ),
        "reason": Param("schedule", type="string", description="Why this run was started."),
    },
    tags=["training"],
    doc_md=__doc__,
) as dag:
    extract = cli_task(
        config,
        "extract_training_set",
        [
            "extract-training-set",
            "--as-of",
            CUTOFF,
            "--days",
            "{{ params.days }}",
            "--output",
            f"{DATASET}/",
        ],
        skip_on_exit_code=TOO_FEW_LABELS_EXIT_CODE,
        doc_md="Point-in-time training set (transactions, labels known at the cutoff).",
    )
    train = cli_task(
        config,
        "train",
        [
            "train",
            *INPUTS,
            "--candidates",
            "{{ params.candidates }}",
            "{{ '--smote' if params.smote else '--no-smote' }}",
            "--run-key",
            REQUEST_KEY,
            "--json",
        ],
        size="training",
        doc_md="Train and register a challenger (a retry reuses the version of its cutoff).",
    )
    evaluate = cli_task(
        config,
        "evaluate",
        ["evaluate", "--model", "challenger", *INPUTS, "--json"],
        size="training",
        doc_md="The challenger on the holdout, beside the rules baseline.",
    )
    promote = cli_task(
        config,
        "promote",
        [
            "promote",
            "--version",
            "challenger",
            *INPUTS,
            "--request-key",
            REQUEST_KEY,
            "--decided-by",
            "airflow:fraud_retrain",
            "--json",
        ],
        size="training",
        doc_md="Gate, move @champion if the challenger wins, announce, record.",
    )
    extract >> train >> evaluate >> promote
