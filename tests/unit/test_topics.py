from __future__ import annotations

from fraudstream.topics import ALL_TOPICS, TRANSACTIONS, topic_names


def test_the_platform_topics() -> None:
    assert topic_names() == [
        "transactions",
        "fraud_predictions",
        "fraud_alerts",
        "dead_letters",
        "transaction_labels",
        "model_events",
    ]


def test_names_are_unique_and_valid_kafka_names() -> None:
    names = topic_names()
    assert len(set(names)) == len(names)
    for name in names:
        assert 0 < len(name) <= 249
        assert all(c.isalnum() or c in "._-" for c in name)


def test_configs_carry_min_insync_and_retention() -> None:
    for spec in ALL_TOPICS:
        configs = spec.configs(min_insync_replicas=2)
        assert configs["min.insync.replicas"] == "2"
        assert int(configs["retention.ms"]) >= 24 * 3600 * 1000
        assert configs["cleanup.policy"] == "delete"


def test_transactions_are_keyed_by_card() -> None:
    assert TRANSACTIONS.key == "card_id"
