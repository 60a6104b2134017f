"""Verdicts against the real platform: the writer's token only, the alert's status set at once,
the label published to ``transaction_labels`` and written to ``labels`` once, by label
ingestion; a repeated verdict changes nothing, a different one replaces the label."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from fraudstream.adapters.postgres import connect
from fraudstream.settings import Settings
from fraudstream.topics import TRANSACTION_LABELS
from tests.integration.api_support import World, writer_headers
from tests.integration.label_support import ingest_since, published_since, topic_end


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
    malformed = client.post(url, json={"verdict": "maybe"}, headers=writer_headers(api_world))
    assert malformed.status_code == 422
    assert (
        client.post(
            "/alerts/no-such/verdict", json=body, headers=writer_headers(api_world)
        ).status_code
        == 404
    )

    labels_end = topic_end(api_world.settings)
    first = client.post(url, json=body, headers=writer_headers(api_world))
    assert first.status_code == 200
    assert first.json()["changed"] is True
    label = first.json()["label"]
    assert label["is_fraud"] is True
    assert label["source"] == "analyst"
    assert label["topic"] == TRANSACTION_LABELS.name
    again = client.post(url, json=body, headers=writer_headers(api_world))
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
    with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT merchant_id, event_time FROM fraud_alerts WHERE transaction_id = %s",
            (alert_id,),
        )
        merchant_id, event_time = cur.fetchone()
    # Keyed: the scorer applies it to the alert's merchant without a link.
    assert published[0]["merchant_id"] == merchant_id
    assert datetime.fromisoformat(published[0]["event_time"]) == event_time

    assert ingest_since(api_world.settings, labels_end) == 1  # label ingestion writes it, once
    rows = _label_rows(api_world.settings, alert_id)
    assert rows == [(True, "analyst", datetime.fromisoformat(label["label_time"]))]

    flipped_end = topic_end(api_world.settings)
    flipped = client.post(
        url, json={"verdict": "rejected", "analyst": "bo"}, headers=writer_headers(api_world)
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
