"""The live alert stream: records of the ``fraud_alerts`` topic fanned out to SSE clients.

One consumer per API process reads the topic from its end at start-up (it assigns
every partition at its high watermark, without a consumer group, so there is no
rebalance delay and no offsets to commit: a dashboard wants what happens from now
on; history is ``GET /alerts``). Each connected client has a bounded queue; a client
too slow to keep up loses its oldest alerts rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from fraudstream.settings import KafkaSettings
from fraudstream.topics import FRAUD_ALERTS

log = logging.getLogger("fraudstream.api")
_QUEUE = 500


class AlertFeed:
    def __init__(self, settings: KafkaSettings, topic: str = FRAUD_ALERTS.name) -> None:
        self.settings, self.topic = settings, topic
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]
        self._subscribers = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
        self.received = 0

    def start(self, timeout_s: float = 15.0) -> None:
        """Start consuming; returns once every partition is assigned (or after the timeout)."""
        self._thread.start()
        self._ready.wait(timeout_s)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    def _deliver(self, alert: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(_offer, queue, alert)

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from fraudstream.adapters.kafka import consumer_config

        try:
            consumer = Consumer(consumer_config(self.settings, "fraudstream-api-live"))
        except Exception:
            log.exception("alert feed: cannot create the Kafka consumer")
            return
        try:
            meta = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            assignment = []
            for partition in meta.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10
                )
                assignment.append(TopicPartition(self.topic, partition, high))
            consumer.assign(assignment)
            self._ready.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                try:
                    alert = json.loads(msg.value() or b"")
                except (TypeError, ValueError):
                    log.warning("alert feed: skipping a record that is not JSON")
                    continue
                if isinstance(alert, dict):
                    self.received += 1
                    self._deliver(alert)
        except Exception:
            log.exception("alert feed stopped")
        finally:
            consumer.close()


def _offer(queue: asyncio.Queue[dict[str, Any]], alert: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(alert)
