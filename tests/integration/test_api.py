"""The API against the real platform: scored data in Postgres, states in Redis, a real model.

A small generated history is replayed through the feature functions, a small XGBoost
model is logged to the real MLflow registry as champion, the history is scored and
written to the platform's tables, and the card and merchant states are published to
the online store, as the stream would. Then every endpoint is exercised, bad input too.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
import psycopg2
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg2.extras import Json, execute_values
from xgboost import XGBClassifier

from fraudstream.adapters import registry
from fraudstream.adapters.online_store import OnlineStore, publish_states
from fraudstream.adapters.partitions import ensure_days, utc_day
from fraudstream.adapters.postgres import connect
from fraudstream.api.app import create_app
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import from_record
from fraudstream.features.merchant import MerchantState, update_merchant
from fraudstream.features.replay import build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.scoring.model import ScoringModel
from fraudstream.scoring.model import score as score_batch
from fraudstream.settings import Settings
from fraudstream.topics import TRANSACTION_LABELS
from tests.integration.conftest import CLI
from tests.integration.label_support import ingest_since, published_since, topic_end

pytestmark = [pytest.mark.postgres, pytest.mark.mlflow, pytest.mark.kafka]
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
            feature_set_version, reason_codes, ingest_time, scored_at) VALUES %s""",
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


@pytest.fixture(scope="session")
def api_world(settings: Settings, platform: Any) -> World:
    # ``platform``: the world registers a model and writes rows, so the platform must be up
    # first, also when this module runs before any other.
    prefix = f"api{uuid.uuid4().hex[:6]}"
    model_settings = _named(settings, f"fraud-detector-api-{prefix}")
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


@pytest.fixture(scope="session")
def client(api_world: World) -> Iterator[TestClient]:
    """The API as an analyst calls it: every request carries the read-only token."""
    with TestClient(create_app(api_world.settings), headers=_reader(api_world)) as c:
        yield c


def _auth(world: World) -> dict[str, str]:
    """The writer's token (verdicts)."""
    token = world.settings.api.token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def _reader(world: World) -> dict[str, str]:
    """The analyst's read-only token."""
    token = world.settings.api.read_token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def _wire(record: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: v
        for k, v in record.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }
    out["event_time"] = record["event_time"].isoformat().replace("+00:00", "Z")
    return out


def test_score_computes_exactly_the_stream_features_and_changes_no_state(
    client: TestClient, api_world: World
) -> None:
    held = api_world.held_out
    store = OnlineStore(api_world.settings.redis)
    before = store.client.mget(
        [store.card_key(held["card_id"]), store.merchant_key(held["merchant_id"])]
    )
    response = client.post("/score", json=_wire(held))
    assert response.status_code == 200, response.text
    body = response.json()
    # The training path (which equals the stream's, tests/unit/test_features_replay.py): the
    # same history with this transaction last, without labels, as the published states are.
    history = pd.concat([api_world.txns, pd.DataFrame([held])], ignore_index=True)
    offline = build_features(history).set_index("transaction_id")
    expected = offline.loc[held["transaction_id"], feature_names()].tolist()
    got = [body["features"][n] for n in feature_names()]
    assert [None if math.isnan(v) else v for v in expected] == got
    loaded = registry.load_model(api_world.settings, api_world.model_version)
    x = np.asarray(expected, dtype=np.float64).reshape(1, -1)
    assert body["score"] == float(loaded.model.predict_proba(x)[0, 1])
    assert body["decision"] == ("alert" if body["score"] >= body["threshold"] else "pass")
    assert body["model_version"] == api_world.model_version
    assert body["feature_set_version"] == FEATURE_SET_VERSION
    assert len(body["reason_codes"]) <= 3
    after = store.client.mget(
        [store.card_key(held["card_id"]), store.merchant_key(held["merchant_id"])]
    )
    assert after == before  # a what-if score writes nothing back


def test_score_refuses_bad_input_with_problem_json(client: TestClient, api_world: World) -> None:
    bad = {**_wire(api_world.held_out), "amount": -5}
    response = client.post("/score", json=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "amount" in response.json()["detail"]
    assert response.json()["reason"] == "amount_negative"  # the stream's reason code
    # A zero-amount authorisation (account verification) is a transaction like any other.
    zero = client.post("/score", json={**_wire(api_world.held_out), "amount": 0.0})
    assert zero.status_code == 200, zero.text
    assert 0.0 <= zero.json()["score"] <= 1.0
    response = client.post(
        "/score", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_the_openapi_example_of_score_scores(client: TestClient) -> None:
    """What "Try it out" in /docs sends: the request body's example, as the document shows it."""
    spec = client.get("/openapi.json").json()
    example = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    response = client.post("/score", json=example["example"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["score"] <= 1.0
    assert body["decision"] in ("alert", "pass")


def test_transaction_lookup_and_unknown_id(client: TestClient, api_world: World) -> None:
    alert_id = api_world.alert_ids[0]
    body = client.get(f"/transactions/{alert_id}").json()
    assert body["decision"] == "alert"
    assert body["model_version"] == api_world.model_version
    assert body["raw"]["transaction_id"] == alert_id
    assert 1 <= len(body["reason_codes"]) <= 3
    assert "feature" in body["reason_codes"][0]
    missing = client.get("/transactions/no-such-transaction")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "no-such-transaction" in missing.json()["detail"]


def test_lookups_before_the_hot_window_name_the_retention(
    client: TestClient, api_world: World
) -> None:
    """Retention dropped 2020-01-01 of both tables (as `fraudstream retention` logs it)."""
    with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO partition_drops
                   (table_name, partition_name, day, retention_days, bytes, duration_ms)
               VALUES ('fraud_alerts', 'fraud_alerts_p20200101', '2020-01-01', 180, 0, 1),
                      ('transactions_with_score', 'transactions_with_score_p20200101',
                       '2020-01-01', 35, 0, 1)
               RETURNING id"""
        )
        ids = [r[0] for r in cur.fetchall()]
    try:
        gone = client.get("/alerts", params={"until": "2020-01-01T12:00:00Z"})
        assert gone.status_code == 410
        assert gone.headers["content-type"] == "application/problem+json"
        body = gone.json()
        assert body["type"].endswith("/beyond-retention")
        assert body["retention_days"] == 180
        assert "180 days" in body["detail"]
        assert "2020-01-02" in body["detail"]
        assert client.get("/alerts", params={"until": "2020-01-03T00:00:00Z"}).status_code == 200
        assert client.get("/alerts").status_code == 200
        missing = client.get("/transactions/no-such-transaction")
        assert missing.status_code == 404
        assert "35 days" in missing.json()["detail"]
    finally:
        with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM partition_drops WHERE id = ANY(%s)", (ids,))


def test_alerts_filters_and_pagination(client: TestClient, api_world: World) -> None:
    ours = set(api_world.alert_ids)
    first = client.get("/alerts", params={"limit": 2, "min_score": 0}).json()
    assert first["limit"] == 2
    assert len(first["items"]) == 2
    assert first["total"] >= len(ours)
    second = client.get("/alerts", params={"limit": 2, "offset": 2}).json()
    assert {a["transaction_id"] for a in first["items"]}.isdisjoint(
        a["transaction_id"] for a in second["items"]
    )
    card = client.get(f"/transactions/{api_world.alert_ids[0]}").json()["raw"]["card_id"]
    by_card = client.get("/alerts", params={"card_id": card, "limit": 500}).json()
    assert by_card["items"]
    assert all(a["card_id"] == card for a in by_card["items"])
    assert client.get("/alerts", params={"status": "maybe"}).status_code == 422


def test_verdict_needs_a_token_becomes_an_analyst_label_and_is_idempotent(
    client: TestClient, api_world: World
) -> None:
    alert_id = api_world.alert_ids[1]
    url = f"/alerts/{alert_id}/verdict"
    body = {"verdict": "confirmed", "analyst": "ana"}
    missing = TestClient(client.app).post(url, json=body)  # no token at all
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    read_only = client.post(url, json=body)  # the analyst's token reads, never writes
    assert read_only.status_code == 403
    assert "writer" in read_only.json()["detail"]
    malformed = client.post(url, json={"verdict": "maybe"}, headers=_auth(api_world))
    assert malformed.status_code == 422
    assert (
        client.post("/alerts/no-such/verdict", json=body, headers=_auth(api_world)).status_code
        == 404
    )

    labels_end = topic_end(api_world.settings)
    first = client.post(url, json=body, headers=_auth(api_world))
    assert first.status_code == 200
    assert first.json()["changed"] is True
    label = first.json()["label"]
    assert label["is_fraud"] is True
    assert label["source"] == "analyst"
    assert label["topic"] == TRANSACTION_LABELS.name
    again = client.post(url, json=body, headers=_auth(api_world))
    assert again.json()["changed"] is False
    assert again.json()["label"] is None
    assert _label_rows(api_world.settings, alert_id) == []  # the API does not write labels
    with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, verdict_by FROM fraud_alerts WHERE transaction_id = %s", (alert_id,)
        )
        assert cur.fetchone() == ("confirmed", "ana")
    published = published_since(api_world.settings, labels_end, alert_id)
    assert len(published) == 1
    assert published[0]["source"] == "analyst"

    assert ingest_since(api_world.settings, labels_end) == 1  # label ingestion writes it, once
    rows = _label_rows(api_world.settings, alert_id)
    assert rows == [(True, "analyst", datetime.fromisoformat(label["label_time"]))]

    flipped_end = topic_end(api_world.settings)
    flipped = client.post(
        url, json={"verdict": "rejected", "analyst": "bo"}, headers=_auth(api_world)
    )
    assert flipped.json()["changed"] is True
    assert flipped.json()["label"]["is_fraud"] is False
    assert ingest_since(api_world.settings, flipped_end) == 1
    newer = _label_rows(api_world.settings, alert_id)
    assert len(newer) == 1
    assert newer[0][:2] == (False, "analyst")
    assert newer[0][2] > rows[0][2]


def _label_rows(settings: Settings, txn_id: str) -> list[tuple[Any, ...]]:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT is_fraud, source, label_time FROM labels WHERE transaction_id = %s", (txn_id,)
        )
        return cur.fetchall()


def test_model_stats_health_metrics_and_openapi(client: TestClient, api_world: World) -> None:
    model = client.get("/model").json()
    assert model["champion"]["version"] == api_world.model_version
    assert model["serving"] == api_world.model_version
    assert model["promotions"][0]["reason"] == "first champion"
    dist = client.get("/stats/score-distribution", params={"bins": 10}).json()
    assert len(dist["bins"]) == 10
    assert sum(b["passed"] + b["alerted"] for b in dist["bins"]) >= len(api_world.scored_ids)
    rate = client.get("/stats/alert-rate", params={"hours": 1}).json()
    assert sum(p["scored"] for p in rate["points"]) >= len(api_world.scored_ids)
    assert any(p["latency_p50_ms"] == pytest.approx(800) for p in rate["points"])
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert client.get("/health/live").json()["status"] == "ok"
    metrics = client.get("/metrics").text
    assert 'fraudstream_api_requests_total{method="GET",route="/model",status="200"}' in metrics
    assert "fraudstream_api_score_duration_seconds_count" in metrics
    spec = client.get("/openapi.json").json()
    for path in (
        "/transactions/{transaction_id}",
        "/alerts",
        "/alerts/stream",
        "/model",
        "/stats/score-distribution",
        "/stats/alert-rate",
        "/score",
        "/alerts/{transaction_id}/verdict",
        "/health/ready",
    ):
        assert path in spec["paths"], path
    assert "422" in spec["paths"]["/score"]["post"]["responses"]


def test_score_reasons_are_the_streams_for_the_same_row(
    client: TestClient, api_world: World
) -> None:
    # The stream's scoring of the same feature vector: exact TreeSHAP for an alert, the
    # path attribution for a pass; the API must rank the same reasons with the same values.
    loaded = registry.load_model(api_world.settings, api_world.model_version)
    model = ScoringModel.checked(loaded)
    bodies = [
        client.post("/score", json=_wire(r)).json()
        for r in api_world.txns.tail(40).to_dict("records")
    ]
    x = np.asarray(
        [
            [np.nan if b["features"][n] is None else b["features"][n] for n in feature_names()]
            for b in bodies
        ],
        dtype=np.float64,
    )
    stream = score_batch(model, x)  # the 40 rows as one micro-batch: predict_proba's path
    for i, body in enumerate(bodies):
        assert body["score"] == stream.score[i]  # predict_proba's score, bit for bit
        assert body["decision"] == ("alert" if stream.alert[i] else "pass")
        expected = [
            {"feature": f, "value": None if math.isnan(v) else v, "contribution": c}
            for f, v, c in stream.reasons[i]
        ]
        assert body["reason_codes"] == expected


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serve(
    world: World, workers: int, tmp_path: Path, reload_interval: float = 30, **env: str
) -> Iterator[str]:
    """`fraudstream serve` as a user starts it, on a free loopback port, until every one
    of its workers has answered /health/ready; its base URL."""
    port = _free_port()
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


OPEN = {("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}


def test_every_endpoint_serves_the_roles_it_admits(api_world: World, tmp_path: Path) -> None:
    """From the route table, against `fraudstream serve`: the analyst's token reads every
    read endpoint (the alert stream included), the writer's token writes, the analyst's
    does not (tests/unit/test_api_auth.py refuses the missing and the wrong tokens)."""
    endpoints = sorted(
        (method, str(context.path))
        for context in iter_route_contexts(create_app(api_world.settings).routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.original_route.methods
    )
    alert_id = api_world.alert_ids[-1]
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/score"): _wire(api_world.held_out),
        ("POST", "/alerts/{transaction_id}/verdict"): {"verdict": "rejected", "analyst": "rt"},
    }
    writes = {("POST", "/alerts/{transaction_id}/verdict")}
    reader, writer = _reader(api_world), _auth(api_world)
    with _serve(api_world, 1, tmp_path) as url:
        for method, path in endpoints:
            if (method, path) in OPEN:
                continue
            assert method == "GET" or (method, path) in bodies, f"{method} {path}: add a body"
            target = url + re.sub(r"\{[^}]+\}", alert_id, path)
            body = bodies.get((method, path))
            if (method, path) in writes:
                refused = httpx.request(method, target, json=body, headers=reader, timeout=30)
                assert refused.status_code == 403, (method, path, refused.text)
                done = httpx.request(method, target, json=body, headers=writer, timeout=30)
                assert done.status_code == 200, (method, path, done.text)
                continue
            with httpx.stream(method, target, json=body, headers=reader, timeout=30) as answer:
                assert answer.status_code == 200, (method, path, answer.read())
                assert next(answer.iter_bytes()), (method, path)  # the stream's first bytes


def _serving(url: str, workers: int, timeout_s: float = 120) -> dict[int, str]:
    """What each worker reports serving (worker pid -> model check), every worker seen once.

    Readiness is asked in bursts of parallel new connections, which the kernel hands to
    whichever workers accept them.
    """
    found: dict[int, str] = {}
    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(8) as pool:
        while len(found) < workers and time.monotonic() < deadline:
            burst = [pool.submit(httpx.get, f"{url}/health/ready", timeout=30) for _ in range(8)]
            for answer in burst:
                body = answer.result().json()
                found.setdefault(body["worker"], body["checks"]["model"])
    return found


def test_a_saturated_worker_refuses_at_once_and_recovers(api_world: World, tmp_path: Path) -> None:
    txn = _wire(api_world.txns.iloc[-1].to_dict())
    with _serve(api_world, 1, tmp_path, FRAUDSTREAM_API_MAX_IN_FLIGHT="2") as url:
        reader = _reader(api_world)
        assert httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10).status_code == 200
        # Two dashboard reads held in flight by a lock on the alerts table fill the worker.
        holder = psycopg2.connect(api_world.settings.postgres.dsn())
        holder.cursor().execute("LOCK TABLE fraud_alerts IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(2) as pool:
            reads = [
                pool.submit(httpx.get, f"{url}/alerts", headers=reader, timeout=60)
                for _ in range(2)
            ]
            try:
                deadline = time.monotonic() + 30
                while (
                    "saturated"
                    not in httpx.get(f"{url}/health/ready").json()["checks"]["admission"]
                ):
                    assert time.monotonic() < deadline, "the two reads never were in flight"
                    time.sleep(0.1)
                refused = httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10)
                ready = httpx.get(f"{url}/health/ready", timeout=10)
                metrics = httpx.get(f"{url}/metrics", timeout=10).text
            finally:
                holder.rollback()
                holder.close()
            assert [r.result().status_code for r in reads] == [200, 200]
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        problem = refused.json()
        assert problem["type"].endswith("/overloaded")
        assert problem["status"] == 503
        assert problem["instance"] == "/score"
        assert ready.status_code == 200  # saturation is reported, not a reason to leave
        assert ready.json()["checks"]["admission"].startswith("saturated, refusing: 2 of 2")
        assert "fraudstream_api_requests_shed_total 1.0" in metrics
        # Load fell: the worker admits again.
        again = httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10)
        assert again.status_code == 200, again.text
        assert again.json()["model_version"] == api_world.model_version
        checks = httpx.get(f"{url}/health/ready", timeout=10).json()["checks"]
        assert checks["admission"] == "ok: 0 of 2 in flight, 1 refused so far"


def test_every_worker_reloads_the_champion_when_the_alias_moves(
    api_world: World, tmp_path: Path
) -> None:
    # A model of its own (the API world's, logged twice), so that moving its alias
    # changes nothing for the other tests.
    name = f"fraud-detector-reload-{uuid.uuid4().hex[:6]}"
    loaded = registry.load_model(api_world.settings, api_world.model_version)
    mlflow.set_tracking_uri(api_world.settings.mlflow.uri)
    mlflow.set_experiment("api-tests")
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            info = mlflow.xgboost.log_model(
                loaded.model,
                name="model",
                registered_model_name=name,
                metadata={
                    "threshold": loaded.threshold,
                    "feature_set_version": FEATURE_SET_VERSION,
                    "feature_names": feature_names(),
                    "model_kind": "xgboost",
                },
            )
        versions.append(str(info.registered_model_version))
    first, second = versions
    mlflow_client = MlflowClient(api_world.settings.mlflow.uri)
    mlflow_client.set_registered_model_alias(name, "champion", first)
    world = World(**{**api_world.__dict__, "settings": _named(api_world.settings, name)})
    with _serve(world, 2, tmp_path, reload_interval=1) as url:
        before = _serving(url, 2)
        assert len(before) == 2
        assert all(f"serving version {first} " in check for check in before.values())
        mlflow_client.set_registered_model_alias(name, "champion", second)
        deadline = time.monotonic() + 300  # a poll each second, then a load from the registry
        after = _serving(url, 2)
        while not all(f"serving version {second} " in c for c in after.values()):
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
            after = _serving(url, 2)
        assert len(after) == 2
        scored = httpx.post(
            f"{url}/score", json=_wire(world.held_out), headers=_reader(world), timeout=30
        )
        assert scored.json()["model_version"] == second
        # A scrape, whichever worker answers it, counts every worker's requests.
        before_count = _ready_requests(url)
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(httpx.get, f"{url}/health/ready", timeout=30) for _ in range(40)]
            workers = {a.result().json()["worker"] for a in answers}
        assert len(workers) == 2
        assert _ready_requests(url) - before_count == 40
        # A client's keep-alive connections, opened at once, are spread over the workers
        # (a socket per worker): with one shared socket, the worker that woke first
        # accepted most of them, and kept their requests.
        for _ in range(5):
            held = _connections_per_worker(url, 32)
            assert len(held) == 2, held
            assert min(held.values()) >= 4, held


def _connections_per_worker(url: str, count: int) -> dict[int, int]:
    """Open ``count`` connections before using any, then ask each which worker holds it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connections = [socket.create_connection((host, int(port)), timeout=30) for _ in range(count)]
    held: dict[int, int] = {}
    try:
        for conn in connections:
            conn.sendall(b"GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
            worker = json.loads(answer.split(b"\r\n\r\n", 1)[1])["worker"]
            held[worker] = held.get(worker, 0) + 1
    finally:
        for conn in connections:
            conn.close()
    return held


def _ready_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "fraudstream_api_requests"
    ]
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith("_total") and s.labels["route"] == "/health/ready"
    )


def _named(settings: Settings, model_name: str) -> Settings:
    mlflow_settings = settings.mlflow.model_copy(update={"model_name": model_name})
    return Settings(**{**settings.__dict__, "mlflow": mlflow_settings})
