"""Kafka sink: every prediction, every alert and every dead letter, written from executors.

``fraud_predictions`` and ``fraud_alerts`` are keyed by ``transaction_id``,
``dead_letters`` by the source record's ``topic/partition/offset``; the producer is
idempotent with ``acks=all``. A replayed micro-batch publishes its records again
(at least once: consumers deduplicate by key). The producer rides out a broker's loss
itself; a partition whose records were still not all acknowledged is sent again, whole,
until its retry budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from confluent_kafka import Producer

from fraudstream.adapters.kafka import producer_config
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.scoring.sinks.base import MicroBatch, Sink, SinkError, worker_client
from fraudstream.settings import KafkaSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ACK_TIMEOUT_S = 60


@dataclass(frozen=True)
class OutputTopics:
    predictions: str
    alerts: str
    dead_letters: str


class KafkaSink(Sink):
    """One frame of ``(topic, key, value)`` rows, ``topic`` naming one of ``OutputTopics``."""

    name: ClassVar[str] = "kafka"

    def __init__(
        self, settings: KafkaSettings, topics: OutputTopics, retry: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.retry = retry or RetryPolicy()

    def frames(self, batch: MicroBatch) -> list[DataFrame]:
        from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)

        parts = []
        if batch.scored is not None:
            scored = batch.scored.select(
                F.col("transaction_id").cast("binary").alias("key"),
                F.col("prediction").alias("value"),
                "is_alert",
            )
            parts.append(scored.select(F.lit("predictions").alias("topic"), "key", "value"))
            alerts = scored.where("is_alert").select(F.lit("alerts").alias("topic"), "key", "value")
            parts.append(alerts)
        if batch.dead_letters is not None:
            dead = batch.dead_letters.select(F.lit("dead_letters").alias("topic"), "key", "value")
            parts.append(dead)
        if not parts:
            return []
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.unionByName(part)
        return [frame]

    def setup(self) -> None:
        self._producer = worker_client(
            ("kafka", self.settings.bootstrap),
            lambda: Producer(producer_config(self.settings, **{"linger.ms": 2})),
        )
        self._errors: list[Any] = []
        self._sent: list[pd.DataFrame] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(err)

    def write(self, rows: pd.DataFrame) -> None:
        self._produce(rows)
        self._sent.append(rows)  # kept until ``flush``, to be sent again if not acknowledged

    def _produce(self, rows: pd.DataFrame) -> None:
        names = {
            "predictions": self.topics.predictions,
            "alerts": self.topics.alerts,
            "dead_letters": self.topics.dead_letters,
        }
        produce = self._producer.produce
        for topic, key, value in zip(rows["topic"], rows["key"], rows["value"], strict=True):
            while True:
                try:
                    produce(names[topic], value=value, key=key, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.05)

    def _acknowledged(self) -> None:
        """Block until every record sent is acknowledged; ``SinkError`` (transient when
        every delivery error is retriable) if not."""
        left = self._producer.flush(ACK_TIMEOUT_S)
        errors, self._errors = self._errors, []
        if left or errors:
            error = SinkError(
                f"Kafka did not acknowledge {left} records; errors: {[str(e) for e in errors[:3]]}"
            )
            error.transient = all(
                getattr(e, "retriable", lambda: False)() or "timed out" in str(e).lower()
                for e in errors
            )
            raise error

    def flush(self) -> None:
        """Block until every record of the partition is acknowledged; a partition with
        unacknowledged records is sent again (within the retry budget), then ``SinkError``."""
        first = True

        def attempt() -> None:
            nonlocal first
            if not first:
                for rows in self._sent:
                    self._produce(rows)
            first = False
            self._acknowledged()

        retry(attempt, self.retry, f"Kafka at {self.settings.bootstrap}")
