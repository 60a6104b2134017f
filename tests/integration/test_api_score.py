"""``POST /score`` against the real platform: the stream's features from the online store, no
state changed, bad input refused as problem+json, the OpenAPI example accepted, and the
stream's score and reasons for the same rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from fraudstream.adapters import registry
from fraudstream.adapters.online_store import OnlineStore
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.replay import build_features
from fraudstream.scoring.model import ScoringModel
from fraudstream.scoring.model import score as score_batch
from tests.integration.api_support import World, wire


def test_score_computes_exactly_the_stream_features_and_changes_no_state(
    client: TestClient, api_world: World
) -> None:
    held = api_world.held_out
    store = OnlineStore(api_world.settings.redis)
    before = store.client.mget(
        [store.card_key(held["card_id"]), store.merchant_key(held["merchant_id"])]
    )
    response = client.post("/score", json=wire(held))
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
    bad = {**wire(api_world.held_out), "amount": -5}
    response = client.post("/score", json=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "amount" in response.json()["detail"]
    assert response.json()["reason"] == "amount_negative"  # the stream's reason code
    # A zero-amount authorisation (account verification) is a transaction like any other.
    zero = client.post("/score", json={**wire(api_world.held_out), "amount": 0.0})
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


def test_score_reasons_are_the_streams_for_the_same_row(
    client: TestClient, api_world: World
) -> None:
    # The stream's scoring of the same feature vector: exact TreeSHAP for an alert, the
    # path attribution for a pass; the API must rank the same reasons with the same values.
    loaded = registry.load_model(api_world.settings, api_world.model_version)
    model = ScoringModel.checked(loaded)
    bodies = [
        client.post("/score", json=wire(r)).json()
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
