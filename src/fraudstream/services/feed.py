"""A paced feed of prepared Kafka records in a background thread: the load that fault drills
and benchmarks keep running while they break things."""

from __future__ import annotations

import threading

import orjson

from fraudstream.adapters.kafka import producer_config
from fraudstream.adapters.transaction_stream import DeliveryError, Pacer, Sender
from fraudstream.settings import KafkaSettings

POISON = [b"{not json", b'{"transaction_id": "poison-without-fields"}', b"\xff\xfe"]
"""Records no validator accepts: not JSON, a transaction without its fields, not UTF-8."""


def send_poison(kafka: KafkaSettings, topic: str) -> set[str]:
    """Send ``POISON`` once; the dead-letter keys (``topic/partition/offset``) it must get."""
    from confluent_kafka import Producer

    keys: set[str] = set()
    failed: list[object] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failed.append(err)
        else:
            keys.add(f"{msg.topic()}/{msg.partition()}/{msg.offset()}")  # type: ignore[attr-defined]

    producer = Producer(producer_config(kafka))
    for value in POISON:
        producer.produce(topic, key=b"poison", value=value, on_delivery=delivered)
    if producer.flush(30) or failed:
        raise DeliveryError(f"poison records to {topic} not delivered: {failed}")
    return keys


class PacedFeed(threading.Thread):
    """Sends ``records`` (key, transaction JSON) to ``topic`` at ``rate`` per second until
    they run out or ``halt`` is set; ``prime`` sends a first batch at once, before ``start``.

    ``ids()`` are the transactions sent so far, in order; an exception in the thread is
    kept in ``error`` for the caller to surface.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        records: list[tuple[bytes, bytes]],
        rate: float,
    ) -> None:
        super().__init__(daemon=True)
        self.kafka, self.topic, self.records, self.rate = kafka, topic, records, rate
        self.all_ids = [str(orjson.loads(v)["transaction_id"]) for _, v in records]
        self.sent = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def prime(self, count: int) -> list[str]:
        """Send the first ``count`` records at once; their transaction ids."""
        sender = Sender(self.kafka)
        for key, value in self.records[:count]:
            sender.send(self.topic, key, value)
        sender.flush()
        self.sent = count
        return self.ids()

    def run(self) -> None:
        try:
            sender, pacer, first = Sender(self.kafka), Pacer(self.rate), self.sent
            for i, (key, value) in enumerate(self.records[first:], start=first + 1):
                if self.halt.is_set():
                    break
                sender.send(self.topic, key, value)
                self.sent = i
                pacer.wait(i - first)
            sender.flush()
        except BaseException as exc:  # surfaced by the caller
            self.error = exc

    def ids(self) -> list[str]:
        return self.all_ids[: self.sent]
