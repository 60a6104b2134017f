"""The API tests' world on the real platform: scored data in Postgres, states in Redis, a model.

A small generated history is replayed through the feature functions, a small XGBoost
model is logged to the real MLflow registry as champion, the history is scored and
written to the platform's tables, and the card and merchant states are published to
the online store, as the stream would. The world is built once per test session (the
``api_world`` fixture of ``conftest.py``) and shared by the ``test_api_*`` modules and the
dashboard's; ``client`` is the API in process with the analyst's token.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from psycopg2.extras import Json, execute_values
from xgboost import XGBClassifier

from fraudstream.adapters import registry
from fraudstream.adapters.online_store import OnlineStore, publish_states
from fraudstream.adapters.partitions import ensure_days, utc_day
from fraudstream.adapters.postgres import connect
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import from_record
from fraudstream.features.merchant import MerchantState, update_merchant
from fraudstream.features.replay import build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.scoring.model import ScoringModel
from fraudstream.scoring.model import score as score_batch
from fraudstream.settings import Settings
from tests.integration.conftest import CLI

START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class World:
    settings: Settings
    txns: pd.DataFrame  # every generated transaction, event-time order
    held_out: dict[str, Any]  # the last transaction: in no state, not scored
    alert_ids: list[str]
    scored_ids: list[str]
    model_version: str


def _history(prefix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    config = GeneratorConfig(seed=7, start=START, days=8, customers=200, merchants=300)
    data = generate(config, id_prefix=prefix)
    txns = data.transactions.to_pandas().sort_values(["event_time", "transaction_id"])
    return txns.reset_index(drop=True), data.labels.to_pandas()


def _register(settings: Settings, x: pd.DataFrame, y: np.ndarray) -> str:
    """A small XGBoost model as champion, logged the way the registry adapter expects."""
    model = XGBClassifier(n_estimators=40, max_depth=3, n_jobs=1, random_state=0)
    model.fit(x, y)
    threshold = float(np.quantile(model.predict_proba(x)[:, 1], 0.98))
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment("api-tests")
    with mlflow.start_run():
        mlflow.log_metrics({"test_xgboost_average_precision": 0.5, "test_xgboost_auc_roc": 0.9})
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            registered_model_name=settings.mlflow.model_name,
            metadata={
                "threshold": threshold,
                "feature_set_version": FEATURE_SET_VERSION,
                "feature_names": feature_names(),
                "model_kind": "xgboost",
            },
        )
    version = str(info.registered_model_version)
    client = MlflowClient(settings.mlflow.uri)
    client.set_registered_model_alias(settings.mlflow.model_name, "champion", version)
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_metadata (model_name, version, aliases, feature_set_version,
                   threshold, metrics, promoted_at)
               VALUES (%s, %s, '{champion}', %s, %s, %s, now())""",
            (
                settings.mlflow.model_name,
                version,
                FEATURE_SET_VERSION,
                threshold,
                Json({"test_xgboost_average_precision": 0.5, "test_xgboost_auc_roc": 0.9}),
            ),
        )
        cur.execute(
            """INSERT INTO model_promotions (request_key, model_name, version, reason)
               VALUES (%s, %s, %s, 'first champion')""",
            (uuid.uuid4().hex, settings.mlflow.model_name, version),
        )
    return version


def _write_scores(
    settings: Settings, txns: pd.DataFrame, world_x: np.ndarray, model: ScoringModel
) -> list[str]:
    """Score every row like the stream and upsert raw, scored and alert rows; alert ids."""
    now = datetime.now(UTC)
    batch = score_batch(model, world_x)
    raw, scored, alerts = [], [], []
    for i, row in enumerate(txns.itertuples(index=False)):
        s = float(batch.score[i])
        is_alert = bool(batch.alert[i])
        reasons = (
            [
                {"feature": f, "value": None if math.isnan(v) else v, "contribution": c}
                for f, v, c in batch.reasons[i]
            ]
            if is_alert
            else []
        )
        raw.append(
            (
                row.transaction_id,
                row.event_time,
                row.card_id,
                row.merchant_id,
                row.amount,
                row.currency,
                row.merchant_category,
            )
        )
        ingest = now - timedelta(seconds=(len(txns) - i) * 0.5)
        scored.append(
            (
                row.transaction_id,
                row.event_time,
                row.card_id,
                row.merchant_id,
                row.amount,
                s,
                model.threshold,
                is_alert,
                "api-test",
                model.version,
                FEATURE_SET_VERSION,
                Json([r["feature"] for r in reasons]),
                ingest,
                ingest + timedelta(milliseconds=800),
                # The model's decision, as the stream stores it without an active rule set.
                "review" if is_alert else "approve",
                "model" if is_alert else None,
            )
        )
        if is_alert:
            alerts.append(
                (
                    row.transaction_id,
                    row.event_time,
                    row.card_id,
                    row.merchant_id,
                    row.amount,
                    s,
                    model.threshold,
                    model.version,
                    Json([r["feature"] for r in reasons]),
                    Json(reasons),
                )
            )
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        ensure_days(cur, {utc_day(r[1]) for r in raw})
        execute_values(
            cur,
            """INSERT INTO transactions_raw (transaction_id, event_time, card_id,
            merchant_id, amount, currency, merchant_category) VALUES %s""",
            raw,
        )
        execute_values(
            cur,
            """INSERT INTO transactions_with_score (transaction_id, event_time,
            card_id, merchant_id, amount, score, threshold, is_alert, model_name, model_version,
            feature_set_version, reason_codes, ingest_time, scored_at, outcome, outcome_reason)
            VALUES %s""",
            scored,
        )
        execute_values(
            cur,
            """INSERT INTO fraud_alerts (transaction_id, event_time, card_id,
            merchant_id, amount, score, threshold, model_version, reason_codes, reason_detail)
            VALUES %s""",
            alerts,
        )
    return [a[0] for a in alerts]


def _states(txns: pd.DataFrame) -> tuple[dict[str, CardState], dict[str, MerchantState]]:
    """Every card's and merchant's state after the transactions (event-time order), from the
    functions the stream updates its states with: what the scorer publishes to Redis."""
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for record in txns.to_dict("records"):
        txn = from_record(record)
        cards[txn.card_id], _ = update_card(cards.get(txn.card_id), txn)
        merchants[txn.merchant_id], _ = update_merchant(merchants.get(txn.merchant_id), txn)
    return cards, merchants


def build_world(settings: Settings) -> World:
    """The world on the running platform (``conftest.api_world`` builds it once a session)."""
    prefix = f"api{uuid.uuid4().hex[:6]}"
    model_settings = named(settings, f"fraud-detector-api-{prefix}")
    txns, labels = _history(prefix)
    held_out = txns.iloc[-1].to_dict()
    txns = txns.iloc[:-1]
    features = build_features(txns, labels)
    x = features[feature_names()].to_numpy(dtype=np.float64)
    y = features["transaction_id"].isin(set(labels.loc[labels["is_fraud"], "transaction_id"]))
    version = _register(model_settings, features[feature_names()], y.to_numpy())
    loaded = registry.load_model(model_settings, version)
    model = ScoringModel.checked(loaded)
    alert_ids = _write_scores(
        model_settings,
        features[["transaction_id"]].join(txns.set_index("transaction_id"), on="transaction_id"),
        x,
        model,
    )
    assert len(alert_ids) >= 3
    publish_states(OnlineStore(model_settings.redis), *_states(txns))
    return World(
        model_settings, txns, held_out, alert_ids, features["transaction_id"].tolist(), version
    )


def writer_headers(world: World) -> dict[str, str]:
    """The writer's token (verdicts)."""
    token = world.settings.api.token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def reader_headers(world: World) -> dict[str, str]:
    """The analyst's read-only token."""
    token = world.settings.api.read_token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def wire(record: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: v
        for k, v in record.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }
    out["event_time"] = record["event_time"].isoformat().replace("+00:00", "Z")
    return out


def named(settings: Settings, model_name: str) -> Settings:
    mlflow_settings = settings.mlflow.model_copy(update={"model_name": model_name})
    return Settings(**{**settings.__dict__, "mlflow": mlflow_settings})


def blocking_rule_set(version: str, blocked: list[str]) -> dict[str, Any]:
    """A rule set as ``PUT /rules`` takes it: the ``blocked`` cards declined, every other
    transaction reviewed."""
    return {
        "version": version,
        "lists": {"blocked_cards": blocked},
        "rules": [
            {"name": "blocked_card", "condition": "card_id in blocked_cards", "outcome": "decline"},
            {"name": "any_amount", "condition": "amount >= 0", "outcome": "review"},
        ],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(
    world: World, workers: int, tmp_path: Path, reload_interval: float = 30, **env: str
) -> Iterator[str]:
    """`fraudstream serve` as a user starts it, on a free loopback port, until every one
    of its workers has answered /health/ready; its base URL."""
    port = free_port()
    environ = {
        **os.environ,
        "FRAUDSTREAM_MLFLOW_MODEL_NAME": world.settings.mlflow.model_name,
        **env,
    }
    args = [
        *CLI,
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--reload-interval",
        str(reload_interval),
    ]
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        server = subprocess.Popen(args, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 300  # workers start slowly on a busy machine
        while len(seen) < workers:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"workers seen: {seen}\n{log.read_text()}"
            try:
                seen.add(httpx.get(f"{url}/health/ready", timeout=30).json()["worker"])
            except httpx.HTTPError:
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(30)
