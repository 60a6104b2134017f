"""The API's reads against the real platform: a transaction by id, lookups past the retained
window, alerts with filters and pages, the model, statistics, health, metrics and OpenAPI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fraudstream.adapters.postgres import connect
from tests.integration.api_support import World


def test_transaction_lookup_and_unknown_id(client: TestClient, api_world: World) -> None:
    alert_id = api_world.alert_ids[0]
    body = client.get(f"/transactions/{alert_id}").json()
    assert body["decision"] == "alert"
    assert body["model_version"] == api_world.model_version
    assert body["raw"]["transaction_id"] == alert_id
    assert 1 <= len(body["reason_codes"]) <= 3
    assert "feature" in body["reason_codes"][0]
    decided = (body["outcome"], body["reason"], body["fired_rules"], body["rules_version"])
    assert decided == ("review", "model", [], None)
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
