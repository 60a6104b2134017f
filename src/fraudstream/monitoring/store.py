"""Monitoring's adapter: the window from Postgres, the reference from MLflow, results back.

Reads ``transactions_with_score`` (whose ``features`` jsonb holds feature name -> value, as
the scorer writes it for alerts and a fixed 1-in-50 sample of the rest:
``adapters.postgres.keeps_features``) and ``labels``; writes ``monitoring_metrics`` as
upserts keyed by (model, window end, metric), so re-running a window replaces its rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.adapters.postgres import connect, in_feature_sample
from fraudstream.features.catalogue import feature_names
from fraudstream.monitoring.profile import PROFILE_ARTIFACT, Profile, ProfileError
from fraudstream.monitoring.window import Metric
from fraudstream.settings import Settings


class MonitoringError(RuntimeError):
    """Monitoring cannot run: no champion, or a champion without a reference profile."""


def champion_profile(settings: Settings, alias: str = "champion") -> tuple[str, Profile]:
    """(version, profile) of the model behind ``alias``, read from its training run."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = settings.mlflow.model_name
    # `runs:/` artifact URIs resolve through the global tracking URI.
    mlflow.set_tracking_uri(settings.mlflow.uri)
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise MonitoringError(
            f"{name} has no @{alias} version: promote one with `fraudstream promote`"
        ) from None
    version, run_id = str(found.version), found.run_id
    try:
        doc = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    except (MlflowException, OSError):
        raise MonitoringError(
            f"{name} version {version} (@{alias}, run {run_id}) has no {PROFILE_ARTIFACT}: "
            "it was trained before training logged reference profiles; retrain it with "
            "`fraudstream train` and promote the new version"
        ) from None
    try:
        return version, Profile.from_dict(doc)
    except ProfileError as exc:
        raise MonitoringError(f"{name} version {version}: {exc}") from None


def _features_frame(rows: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    """Rows whose last column is the ``features`` jsonb -> one float column per feature.

    A feature missing from the document (or JSON null) is NaN, as the model reads it.
    """
    head = pd.DataFrame([r[:-1] for r in rows], columns=columns)
    names = feature_names()
    matrix = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        doc = row[-1] or {}
        for j, name in enumerate(names):
            value = doc.get(name)
            if value is not None:
                matrix[i, j] = float(value)
    return pd.concat([head, pd.DataFrame(matrix, columns=names)], axis=1)


def read_scored(settings: Settings, start: datetime, end: datetime) -> pd.DataFrame:
    """Scored transactions with ``start <= event_time < end``: score, is_alert, features,
    and ``in_feature_sample``: whether the row's features are part of an unbiased sample of
    the window (features stored, and not an alert kept only for being one), on which alone
    feature drift is measured. Row features outside it are NaN."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT score, is_alert, transaction_id, features FROM transactions_with_score
               WHERE event_time >= %s AND event_time < %s""",
            (start, end),
        )
        rows = [
            (score, alert, features is not None and (not alert or in_feature_sample(txn_id)),
             features)
            for score, alert, txn_id, features in cur.fetchall()
        ]  # fmt: skip
    frame = _features_frame(rows, ["score", "is_alert", "in_feature_sample"])
    return frame.astype({"score": np.float64, "is_alert": bool, "in_feature_sample": bool})


def read_labelled(
    settings: Settings, start: datetime, end: datetime, known_at: datetime
) -> pd.DataFrame:
    """Scored transactions in ``[start, end)`` with the fraud labels known at ``known_at``.

    Row shape: event_time, card_id, score, is_fraud (0/1; no label known means genuine).
    """
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT s.event_time, s.card_id, s.score,
                      COALESCE(l.is_fraud AND l.label_time <= %s, false)
               FROM transactions_with_score s
               LEFT JOIN labels l ON l.transaction_id = s.transaction_id
               WHERE s.event_time >= %s AND s.event_time < %s""",
            (known_at, start, end),
        )
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=["event_time", "card_id", "score", "is_fraud"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame.astype({"score": np.float64, "is_fraud": np.int8})


def write_metrics(
    settings: Settings,
    version: str,
    start: datetime,
    end: datetime,
    metrics: list[Metric],
) -> None:
    """Upsert every metric of one window (one transaction: a window is stored whole or not)."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        for m in metrics:
            cur.execute(
                """INSERT INTO monitoring_metrics (model_name, model_version, window_start,
                       window_end, metric, value, threshold, breached, details)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (model_name, window_end, metric) DO UPDATE SET
                       model_version = EXCLUDED.model_version,
                       window_start = EXCLUDED.window_start, value = EXCLUDED.value,
                       threshold = EXCLUDED.threshold, breached = EXCLUDED.breached,
                       details = EXCLUDED.details, computed_at = now()""",
                (
                    settings.mlflow.model_name,
                    version,
                    start,
                    end,
                    m.metric,
                    m.value,
                    m.threshold,
                    m.breached,
                    json.dumps(m.details),
                ),
            )


def stored_metrics(settings: Settings, end: datetime) -> list[tuple[str, str, Metric]]:
    """(model_version, window_start iso, metric) rows stored for the window ending at ``end``."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT model_version, window_start, metric, value, threshold, breached, details
               FROM monitoring_metrics WHERE model_name = %s AND window_end = %s
               ORDER BY metric""",
            (settings.mlflow.model_name, end),
        )
        return [
            (version, start.isoformat(), Metric(metric, value, threshold, breached, details))
            for version, start, metric, value, threshold, breached, details in cur.fetchall()
        ]
