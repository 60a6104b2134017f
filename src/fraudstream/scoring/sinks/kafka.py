"""Kafka sink: every prediction, every alert and every dead letter, written from executors.

``fraud_predictions`` and ``fraud_alerts`` are keyed by ``transaction_id``,
``dead_letters`` by the source record's ``topic/partition/offset``; the producer is
idempotent with ``acks=all``. A replayed micro-batch publishes its records again
(at least once: consumers deduplicate by key). The producer rides out a broker's loss
itself; a partition whose records were still not all acknowledged is sent again, whole,
until its retry budget is spent.

It keeps its own producer rather than ``adapters.kafka.Sender``: the tasks of an executor
process share one producer (``worker_client``), a delivery error is kept whole for its
retriable flag, and the hot loop calls ``produce`` without the Sender's poll per record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from confluent_kafka import Producer

from fraudstream.adapters.kafka import producer_config
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.scoring.sinks.base import Partition, Sink, SinkError, worker_client
from fraudstream.settings import KafkaSettings

ACK_TIMEOUT_S = 60


@dataclass(frozen=True)
class OutputTopics:
    predictions: str
    alerts: str
    dead_letters: str


class KafkaSink(Sink):
    """Each scored row to ``predictions`` (and, for an alert, ``alerts``) keyed by its
    transaction id, each dead letter to ``dead_letters`` keyed by its source position."""

    name: ClassVar[str] = "kafka"

    def __init__(
        self, settings: KafkaSettings, topics: OutputTopics, retry: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.retry = retry or RetryPolicy()

    def setup(self) -> None:
        self._producer = worker_client(
            ("kafka", self.settings.bootstrap),
            lambda: Producer(producer_config(self.settings, **{"linger.ms": 2})),
        )
        self._errors: list[Any] = []
        self._sent: list[Partition] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(err)

    def write(self, part: Partition) -> None:
        self._produce(part)
        self._sent.append(part)  # kept until ``flush``, to be sent again if not acknowledged

    def _produce(self, part: Partition) -> None:
        if part.scored is not None:
            scored = part.scored
            keys = [t.encode() for t in scored["transaction_id"]]
            values = scored["prediction"].to_numpy()
            self._send(self.topics.predictions, keys, values)
            alerts = scored["is_alert"].to_numpy(dtype=bool)
            if alerts.any():
                self._send(
                    self.topics.alerts,
                    [k for k, a in zip(keys, alerts, strict=True) if a],
                    values[alerts],
                )
        if part.dead_letters is not None:
            dead = part.dead_letters
            self._send(self.topics.dead_letters, dead["key"], dead["value"])

    def _send(self, topic: str, keys: Iterable[bytes], values: Iterable[bytes]) -> None:
        produce = self._producer.produce
        for key, value in zip(keys, values, strict=True):
            while True:
                try:
                    produce(topic, value=value, key=key, on_delivery=self._on_delivery)
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
                for part in self._sent:
                    self._produce(part)
            first = False
            self._acknowledged()

        retry(attempt, self.retry, f"Kafka at {self.settings.bootstrap}")
