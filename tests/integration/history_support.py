"""Shared setup of the retraining tests: a labelled history in PostgreSQL, a worse challenger.

The retraining path reads its training window from ``transactions_raw`` and ``labels``
(``extract-training-set``), so the tests write a generated history there exactly as the
ingest path stores it; the promotion gate needs a challenger that must lose, trained by
the same pipeline on labels scattered at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from fraudstream.adapters.postgres import connect, insert_transactions, upsert_labels
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.experiment import run_experiment
from fraudstream.model.split import TimeSplit
from fraudstream.schema import Label, field_names
from fraudstream.services.models import register_experiment
from fraudstream.settings import Settings


def generated_history(
    seed: int, start: datetime, days: int, customers: int = 300, merchants: int = 300
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions, labels) of a generated history, as pandas frames."""
    config = GeneratorConfig(
        seed=seed, start=start, days=days, customers=customers, merchants=merchants
    )
    data = generate(config)
    return data.transactions.to_pandas(), data.labels.to_pandas()


def store_history(
    settings: Settings,
    txns: pd.DataFrame,
    labels: pd.DataFrame,
    extra_labels: Sequence[Label] = (),
) -> None:
    """Load the transactions into ``transactions_raw`` and upsert the labels (plus
    ``extra_labels``) into ``labels`` of the database ``settings`` points at, as
    `fraudstream load` does."""
    columns = list(field_names("transaction"))
    rows = [
        {name: None if pd.isna(v) else v for name, v in zip(columns, record, strict=True)}
        for record in txns[columns].itertuples(index=False)
    ]
    with connect(settings.postgres) as conn:
        insert_transactions(conn, rows, "test-history")
        upsert_labels(
            conn,
            [
                Label(r.transaction_id, bool(r.is_fraud), r.label_time, r.source, r.fraud_scenario)
                for r in labels.itertuples(index=False)
            ]
            + list(extra_labels),
        )


def scattered_labels(txns: pd.DataFrame, labels: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The same labels on transactions drawn at random: nothing left to learn from them."""
    rng = np.random.default_rng(seed)
    return labels.assign(transaction_id=rng.permutation(txns["transaction_id"])[: len(labels)])


def register_worse_challenger(
    settings: Settings,
    txns: pd.DataFrame,
    labels: pd.DataFrame,
    start: datetime,
    run_key: str | None = None,
) -> str:
    """Train with the production pipeline (one candidate) on scattered labels over the
    default 21/7/7 split from ``start``; register it as ``challenger`` (its run tagged with
    ``run_key``, as ``train --run-key`` tags it); return its version."""
    worse = run_experiment(
        txns,
        scattered_labels(txns, labels),
        TimeSplit(pd.Timestamp(start), 21, 7, 7),
        candidates=1,
        arms=("scale_pos_weight",),
    )
    _, version = register_experiment(settings, worse, "test", run_key=run_key)
    return version
