"""The Kafka topics of the platform: the single source of their names and shape.

Everything that names a topic imports it from here: producers, the scorer, the
CLI, the Strimzi KafkaTopic resources (a drift test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its records are keyed by, and what they hold."""

    name: str
    key: str
    description: str
    retention_ms: int = 7 * 24 * 3600 * 1000
    cleanup_policy: str = "delete"

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        """Topic-level configs applied at creation (and re-applied by ``topics ensure``)."""
        return {
            "min.insync.replicas": str(min_insync_replicas),
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
        }


TRANSACTIONS = TopicSpec(
    "transactions",
    "card_id",
    "Canonical transaction JSON from the generator, replay or a real feed.",
)
FRAUD_PREDICTIONS = TopicSpec(
    "fraud_predictions", "transaction_id", "Every score with model version and reason codes."
)
FRAUD_ALERTS = TopicSpec(
    "fraud_alerts", "transaction_id", "Scores at or above the decision threshold."
)
DEAD_LETTERS = TopicSpec(
    "dead_letters",
    "source offset",
    "Invalid input with the reason and its source topic, partition and offset.",
    retention_ms=30 * 24 * 3600 * 1000,
)
TRANSACTION_LABELS = TopicSpec(
    "transaction_labels",
    "transaction_id",
    "Delayed fraud labels: chargebacks and analyst verdicts.",
    retention_ms=90 * 24 * 3600 * 1000,
)
MODEL_EVENTS = TopicSpec(
    "model_events", "model name", "Registrations and promotions of the fraud model."
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    TRANSACTIONS,
    FRAUD_PREDICTIONS,
    FRAUD_ALERTS,
    DEAD_LETTERS,
    TRANSACTION_LABELS,
    MODEL_EVENTS,
)


def topic_names() -> list[str]:
    return [t.name for t in ALL_TOPICS]
