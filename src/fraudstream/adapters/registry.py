"""MLflow registry client: log a training run, register ``fraud-detector``, move aliases.

Every registered version carries what a scorer needs to use it safely: the
feature names (the signature), the decision threshold and the feature-set
version (model metadata and version tags). Every registration and promotion is
also written to Postgres ``model_metadata`` (an upsert keyed by name and version).
The tracking URI is passed per call; nothing is configured at import time.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import mlflow.xgboost
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from fraudstream.adapters.postgres import connect
from fraudstream.adapters.retry import transient
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.schema.jsonvalues import finite
from fraudstream.settings import Settings

CHALLENGER, CHAMPION = "challenger", "champion"
EXPERIMENT_NAME = "fraud-detector-training"
RUN_KEY_TAG = "run_key"
"""Tag of a training run (and its version) naming the request it answers (``train --run-key``)."""
SUMMARY_ARTIFACT = "report/train_summary.json"
_RUN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+=@-]{0,199}")
# The anomaly scorer is stored with skops (no arbitrary pickle); these are the types it holds.
ANOMALY_TRUSTED_TYPES = [
    "fraudstream.model.anomaly.AnomalyScorer",
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
]


class RegistryError(RuntimeError):
    """The registry does not hold what was asked for (a model, an alias, a compatible version),
    or (``transient``) did not answer."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class IncompatibleModelError(RegistryError):
    """The model does not take this code's feature vector (its feature-set version or its
    columns differ): no wait fixes it, retraining does."""


def fail_fast_http() -> None:
    """Make this process's MLflow client fail at once on a refused connection.

    MLflow's HTTP client retries a refused or dropped connection itself, by default 7
    times over about four minutes, blocking its caller throughout. A caller that retries
    under its own budget (the scorer, ``adapters.retry``) calls this first; it sets
    MLflow's own variables only where the environment does not already set them, and
    Spark's Python workers started afterwards inherit them.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@dataclass(frozen=True)
class LoadedModel:
    """A registered model ready to score: one thread, its threshold and feature contract."""

    model: Any
    version: str
    threshold: float
    feature_set_version: str
    feature_names: list[str]


def _client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.mlflow.uri)
    return MlflowClient(tracking_uri=settings.mlflow.uri)


@dataclass(frozen=True)
class TrainingRun:
    """What a training run logs besides its model: plain values, built by the use case
    (``services.models.register_experiment``)."""

    model: Any
    model_kind: str
    """``xgboost`` (native flavour) or ``anomaly`` (scikit-learn flavour, stored with skops)."""
    threshold: float
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    documents: dict[str, Any]
    """JSON artifacts by path (``report/test_report.json``, the drift profile, ...)."""
    figures: dict[str, Any]
    """Matplotlib figures, logged under ``plots/``."""


def _log_model(run: TrainingRun, settings: Settings, metadata: dict[str, Any]) -> Any:
    """Native xgboost flavor for XGBoost; scikit-learn flavor for the anomaly scorer."""
    names = feature_names()
    example = pd.DataFrame(np.zeros((1, len(names))), columns=names)
    common: dict[str, Any] = {
        "name": "model",
        "signature": infer_signature(example, np.zeros(1)),
        "metadata": metadata,
        "registered_model_name": settings.mlflow.model_name,
    }
    if run.model_kind == "xgboost":
        return mlflow.xgboost.log_model(run.model, **common)
    return mlflow.sklearn.log_model(
        run.model,
        serialization_format="skops",
        skops_trusted_types=ANOMALY_TRUSTED_TYPES,
        pyfunc_predict_fn="predict_proba",
        **common,
    )


def log_training_run(
    settings: Settings, run: TrainingRun, run_key: str | None = None
) -> tuple[str, str]:
    """Log the run's params, metrics, documents, figures and model; register it as challenger.

    Returns (run_id, version). The version is also upserted into ``model_metadata``.
    ``run_key`` tags the run from its creation (see ``registered_for_run_key``).
    """
    client = _client(settings)
    mlflow.set_experiment(EXPERIMENT_NAME)
    metadata = {
        "threshold": run.threshold,
        "feature_set_version": FEATURE_SET_VERSION,
        "feature_names": feature_names(),
        "model_kind": run.model_kind,
    }
    with mlflow.start_run(tags={RUN_KEY_TAG: run_key} if run_key else None) as active:
        mlflow.log_params(run.params)
        mlflow.log_metrics(run.metrics)
        mlflow.set_tags(
            {**run.tags, "feature_set_version": FEATURE_SET_VERSION, "model_kind": run.model_kind}
        )
        for path, document in run.documents.items():
            mlflow.log_dict(document, path)
        for name, figure in run.figures.items():
            mlflow.log_figure(figure, f"plots/{name}")
        info = _log_model(run, settings, metadata)
    version = str(info.registered_model_version)
    run_id = active.info.run_id
    _finish_registration(client, settings, version, run_id, run.metrics, run_key)
    return run_id, version


def _finish_registration(
    client: MlflowClient,
    settings: Settings,
    version: str,
    run_id: str,
    metrics: dict[str, float],
    run_key: str | None,
) -> None:
    """Tag the version, point ``challenger`` at it, record it: every step idempotent, so a
    keyed retry after a crash anywhere past registration finishes the same way."""
    name = settings.mlflow.model_name
    threshold = float(metrics["threshold"])
    client.set_model_version_tag(name, version, "threshold", str(threshold))
    client.set_model_version_tag(name, version, "feature_set_version", FEATURE_SET_VERSION)
    if run_key:
        client.set_model_version_tag(name, version, RUN_KEY_TAG, run_key)
    client.set_registered_model_alias(name, CHALLENGER, version)
    record_version(settings, version, run_id, threshold, metrics)


def check_run_key(key: str) -> str:
    """The key itself when it can tag a run and be searched for; else a ValueError naming why.

    Letters, digits and ``_ . : / + = @ -``, at most 200 characters: no quotes or spaces,
    so the key can sit in a registry search filter as it is.
    """
    if not _RUN_KEY.fullmatch(key):
        raise ValueError(
            f"{key!r} is not a usable run key: use 1-200 letters, digits and _ . : / + = @ -, "
            "starting with a letter or digit (e.g. fraud_retrain/20260301T030000Z)"
        )
    return key


@dataclass(frozen=True)
class KeyedVersion:
    """A registered version whose training run carries a run key."""

    version: str
    run_id: str
    aliases: tuple[str, ...]


def pick_keyed(found: list[KeyedVersion]) -> KeyedVersion | None:
    """The version a keyed retry reuses when several carry the key (two attempts that ran
    at once): the one already ``challenger``, else the first registered."""
    if not found:
        return None
    for candidate in found:
        if CHALLENGER in candidate.aliases:
            return candidate
    return min(found, key=lambda v: int(v.version))


def registered_for_run_key(settings: Settings, key: str) -> KeyedVersion | None:
    """The version of this model registered by a training run tagged ``key``, if any.

    The run is tagged when it is created, before the model is registered, so a version
    registered by an attempt that died before tagging it or moving the alias is found too.
    Versions whose registration did not complete (status other than READY) are ignored.
    """
    client = _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.{RUN_KEY_TAG} = '{check_run_key(key)}'"
    )
    found = []
    for run in runs:
        versions = client.search_model_versions(
            f"name = '{settings.mlflow.model_name}' AND run_id = '{run.info.run_id}'"
        )
        found += [
            KeyedVersion(str(v.version), run.info.run_id, tuple(sorted(v.aliases)))
            for v in versions
            if v.status == "READY"
        ]
    return pick_keyed(found)


def adopt_keyed(settings: Settings, keyed: KeyedVersion, run_key: str) -> dict[str, Any]:
    """Finish what the keyed attempt may have left undone (tags, ``challenger``, the
    ``model_metadata`` row) and return the summary it logged (``train --json``'s body)."""
    client = _client(settings)
    run = client.get_run(keyed.run_id)
    _finish_registration(
        client, settings, keyed.version, keyed.run_id, dict(run.data.metrics), run_key
    )
    try:
        summary: dict[str, Any] = mlflow.artifacts.load_dict(
            f"runs:/{keyed.run_id}/{SUMMARY_ARTIFACT}"
        )
    except MlflowException:
        # Logged without a summary (not by `fraudstream train`): what the run itself holds.
        summary = {
            "model_kind": run.data.tags.get("model_kind"),
            "threshold": run.data.metrics.get("threshold"),
            "metrics": dict(run.data.metrics),
            "lineage": {},
        }
    return summary


def record_version(
    settings: Settings, version: str, run_id: str, threshold: float, metrics: dict[str, float]
) -> None:
    """Upsert the version's row in ``model_metadata``, then every row's aliases."""
    aliases = aliases_of(settings, version)
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_metadata (model_name, version, run_id, aliases,
                   feature_set_version, threshold, metrics)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (model_name, version) DO UPDATE SET
                   run_id = EXCLUDED.run_id, aliases = EXCLUDED.aliases,
                   feature_set_version = EXCLUDED.feature_set_version,
                   threshold = EXCLUDED.threshold, metrics = EXCLUDED.metrics""",
            (
                settings.mlflow.model_name,
                version,
                run_id,
                aliases,
                FEATURE_SET_VERSION,
                threshold,
                json.dumps(finite(metrics)),
            ),
        )
    sync_aliases(settings)


def sync_aliases(settings: Settings) -> None:
    """Copy every version's aliases from the registry into ``model_metadata`` (idempotent)."""
    client = _client(settings)
    name = settings.mlflow.model_name
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_metadata WHERE model_name = %s", (name,))
        for (version,) in cur.fetchall():
            cur.execute(
                "UPDATE model_metadata SET aliases = %s WHERE model_name = %s AND version = %s",
                (sorted(by_version.get(version, [])), name, version),
            )


def aliases_of(settings: Settings, version: str) -> list[str]:
    client = _client(settings)
    found = client.get_model_version(settings.mlflow.model_name, version)
    return sorted(found.aliases)


def version_for_alias(settings: Settings, alias: str) -> str | None:
    """The version an alias points at, or None when the alias is not set; a registry that
    does not answer raises ``RegistryError`` (``transient``), never None."""
    client = _client(settings)
    try:
        return str(client.get_model_version_by_alias(settings.mlflow.model_name, alias).version)
    except MlflowException as exc:
        if transient(exc):
            raise RegistryError(
                f"the registry at {settings.mlflow.uri} did not answer: {exc.message}",
                transient=True,
            ) from None
        return None


def model_uri(settings: Settings, ref: str) -> str:
    """``champion``/``challenger``/a version number/a full URI -> a models:/ URI."""
    if ":/" in ref:
        return ref
    name = settings.mlflow.model_name
    return f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"


def _version_of(settings: Settings, ref: str) -> str | None:
    """The registered version a reference names (None for a URI outside the registry)."""
    if ref.isdigit():
        return ref
    if ":/" not in ref:
        found = version_for_alias(settings, ref)
        if found is None:
            raise RegistryError(
                f"{settings.mlflow.model_name} has no version with alias @{ref}: "
                "train one with `fraudstream train`"
            )
        return found
    return None


def load_model(settings: Settings, ref: str) -> LoadedModel:
    """Load a registered model (native xgboost flavor, or the anomaly scorer), one thread.

    Refuses a model whose feature-set version this code does not compute.
    """
    uri = model_uri(settings, ref)
    _client(settings)
    try:
        info = mlflow.models.get_model_info(uri)
        native = "xgboost" in info.flavors
        model = mlflow.xgboost.load_model(uri) if native else mlflow.sklearn.load_model(uri)
    except MlflowException as exc:
        raise RegistryError(f"cannot load {uri}: {exc.message}", transient(exc)) from None
    meta = info.metadata or {}
    version = meta.get("feature_set_version")
    if version != FEATURE_SET_VERSION:
        raise IncompatibleModelError(
            f"{uri} was trained on feature-set version {version!r}, this code computes "
            f"{FEATURE_SET_VERSION!r}: retrain it with `fraudstream train`"
        )
    model.set_params(n_jobs=1)
    return LoadedModel(
        model=model,
        version=_version_of(settings, ref) or uri,
        threshold=float(meta["threshold"]),
        feature_set_version=str(version),
        feature_names=list(meta["feature_names"]),
    )


def set_champion(settings: Settings, version: str, reason: str) -> None:
    """Point ``champion`` at ``version`` and record the promotion in ``model_metadata``."""
    client = _client(settings)
    name = settings.mlflow.model_name
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_metadata (model_name, version, promoted_at)
               VALUES (%s, %s, now())
               ON CONFLICT (model_name, version) DO UPDATE SET promoted_at = now()""",
            (name, version),
        )
    sync_aliases(settings)


@dataclass(frozen=True)
class Promotion:
    """One move of ``champion``, as ``model_promotions`` keeps it."""

    request_key: str
    version: str
    previous_version: str | None
    reason: str
    decided_by: str
    metrics: dict[str, Any]


def promotion_for_key(settings: Settings, request_key: str) -> Promotion | None:
    """The promotion already made under ``request_key`` (a retried request), if any."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT version, previous_version, reason, decided_by, metrics
               FROM model_promotions WHERE request_key = %s""",
            (request_key,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    version, previous, reason, decided_by, metrics = row
    return Promotion(request_key, version, previous, reason, decided_by, metrics)


def record_promotion(settings: Settings, promotion: Promotion, at: str) -> None:
    """Write the promotion's ``model_promotions`` row (once per ``request_key``)."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_promotions (request_key, model_name, alias, version,
                   previous_version, reason, metrics, decided_by, promoted_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (request_key) DO NOTHING""",
            (
                promotion.request_key,
                settings.mlflow.model_name,
                CHAMPION,
                promotion.version,
                promotion.previous_version,
                promotion.reason,
                json.dumps(finite(promotion.metrics)),
                promotion.decided_by,
                at,
            ),
        )
