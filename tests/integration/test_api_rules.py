"""The rule sets through the API against the real platform: ``PUT /rules`` checks, stores and
activates a set (the writer's token; 422 names the rule, 409 a used version), ``GET /rules``
shows it and its history, and ``POST /score`` decides with it beside the model."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fraudstream.api.app import create_app
from tests.integration.api_support import (
    World,
    blocking_rule_set,
    named,
    reader_headers,
    wire,
    writer_headers,
)
from tests.integration.conftest import scratch_env


def test_rules_are_checked_activated_kept_and_decide_score(api_world: World) -> None:
    # A database of its own: the active rule set is the database's, and the other tests'
    # decisions must stay the model's.
    held = wire(api_world.held_out)
    card = held["card_id"]
    with scratch_env(api_world.settings) as scratch:
        settings = named(scratch, api_world.settings.mlflow.model_name)
        with TestClient(create_app(settings), headers=reader_headers(api_world)) as client:
            empty = client.get("/rules").json()
            assert empty == {"active": None, "serving": None, "history": []}
            alone = client.post("/score", json=held).json()
            alert = alone["score"] >= alone["threshold"]
            assert (alone["outcome"], alone["reason"]) == (
                ("review", "model") if alert else ("approve", "")
            )
            assert (alone["fired_rules"], alone["rules_version"]) == ([], None)
            ready = client.get("/health/ready").json()["checks"]["rules"]
            assert ready.startswith("the rule set has no @active yet: activate one")

            put = {
                "rule_set": blocking_rule_set("v1", [card]),
                "activated_by": "ana",
                "comment": "c1",
            }
            refused = client.put("/rules", json=put)  # the analyst's token
            assert refused.status_code == 403, refused.text
            writer = writer_headers(api_world)
            bad = {
                **put,
                "rule_set": {
                    **put["rule_set"],
                    "rules": [
                        {"name": "typo", "condition": "card_cnt_1h > 3", "outcome": "decline"}
                    ],
                },
            }
            invalid = client.put("/rules", json=bad, headers=writer)
            assert invalid.status_code == 422, invalid.text
            assert invalid.headers["content-type"] == "application/problem+json"
            assert invalid.json()["rule"] == "typo"
            assert (
                "unknown name 'card_cnt_1h'; did you mean card_count_1h"
                in (invalid.json()["detail"])
            )
            assert client.get("/rules").json()["active"] is None  # nothing was activated

            done = client.put("/rules", json=put, headers=writer)
            assert done.status_code == 200, done.text
            assert done.json()["version"] == "v1"
            assert done.json()["previous_version"] is None
            decided = client.post("/score", json=held).json()
            assert decided["outcome"] == "decline"
            assert decided["reason"] == "blocked_card"
            assert decided["fired_rules"] == ["blocked_card", "any_amount"]
            assert decided["rules_version"] == "v1"
            assert decided["score"] == alone["score"]  # the model's fields are unchanged
            assert decided["decision"] == alone["decision"]

            taken = {**put, "rule_set": blocking_rule_set("v1", [])}
            conflict = client.put("/rules", json=taken, headers=writer)
            assert conflict.status_code == 409, conflict.text
            assert "give the changed set a new version" in conflict.json()["detail"]

            second = {"rule_set": blocking_rule_set("v2", []), "activated_by": "bob"}
            assert client.put("/rules", json=second, headers=writer).status_code == 200
            reviewed = client.post("/score", json=held).json()
            assert (reviewed["outcome"], reviewed["rules_version"]) == ("review", "v2")
            assert reviewed["reason"] == ("model" if alert else "any_amount")
            listing = client.get("/rules").json()
            assert listing["serving"] == "v2"
            assert listing["active"]["version"] == "v2"
            assert listing["active"]["lists"] == {"blocked_cards": []}
            assert [r["name"] for r in listing["active"]["rules"]] == [
                "blocked_card",
                "any_amount",
            ]
            assert listing["active"]["activation"]["activated_by"] == "bob"
            assert [
                (h["version"], h["previous_version"], h["activated_by"], h["comment"])
                for h in listing["history"]
            ] == [("v2", "v1", "bob", ""), ("v1", None, "ana", "c1")]
