"""Kafka adapter: client configuration, the producer that counts acknowledgements, and topic
administration (confluent-kafka).

Producers are idempotent with ``acks=all``: with ``min.insync.replicas=2`` an
acknowledged record survives the loss of any one of the three nodes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from fraudstream.settings import KafkaSettings
from fraudstream.topics import ALL_TOPICS, TopicSpec


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """An idempotent, durable producer: acks=all, ordered retries, lz4 batches."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        **settings.client_security(),
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "compression.type": "lz4",
        "linger.ms": 5,
        "delivery.timeout.ms": 120_000,
    }
    config.update(overrides)
    return config


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that commits explicitly and reads only committed records."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        **settings.client_security(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge some records; the message says how many and why."""


class Sender:
    """An idempotent ``acks=all`` producer that waits for room and counts acknowledgements.

    The producer is made on the first record: a Sender that never sends (a label ingest
    that meets no invalid label) opens no connection and waits on no producer id, also
    not at shutdown while a broker is still loading its coordinators.
    """

    def __init__(self, settings: KafkaSettings, **overrides: Any) -> None:
        self._config = producer_config(settings, **{"linger.ms": 20, **overrides})
        self._opened: Producer | None = None
        self.acked = 0
        self.failed = 0
        self.first_error: str | None = None
        self.positions: list[tuple[str, int, int]] | None = None

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.acked += 1
            if self.positions is not None:
                self.positions.append((msg.topic() or "", msg.partition() or 0, msg.offset() or 0))
            return
        self.failed += 1
        self.first_error = self.first_error or str(err)

    def keep_positions(self) -> list[tuple[str, int, int]]:
        """From now on keep where each acknowledged record landed, (topic, partition, offset),
        in the list returned."""
        self.positions = []
        return self.positions

    @property
    def _producer(self) -> Producer:
        if self._opened is None:
            self._opened = Producer(self._config)
        return self._opened

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one record; blocks while the local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 120.0) -> None:
        """Wait for every queued record; raise DeliveryError if any sent since the last flush
        was not acknowledged."""
        if self._opened is None:
            return
        left = self._producer.flush(timeout_s)
        if left:
            raise DeliveryError(f"{left} record(s) still unacknowledged after {timeout_s:.0f}s")
        failed, first_error = self.failed, self.first_error
        self.failed, self.first_error = 0, None  # a long-lived sender reports each failure once
        if failed:
            raise DeliveryError(
                f"{failed} record(s) were not acknowledged; first error: {first_error}"
            )


CONSUMER_CLOSE_S = 30.0
"""How long a stopping consumer waits to leave its group before it goes without."""

log = logging.getLogger(__name__)


def close_consumer(consumer: Consumer, timeout_s: float = CONSUMER_CLOSE_S) -> bool:
    """Close ``consumer``, waiting at most ``timeout_s`` for it to leave its group; True if
    it did.

    Leaving is a courtesy to the group (its partitions move at once instead of after the
    session timeout): the offsets that matter are committed before. It waits on the
    group's coordinator, which a broker that has just restarted may still be loading (once
    over two minutes); a command stopped by Ctrl-C must not wait that long, so the close
    runs in a thread and the caller goes on without it when it is late.
    """
    closer = threading.Thread(target=consumer.close, name="kafka-consumer-close", daemon=True)
    closer.start()
    closer.join(timeout_s)
    if closer.is_alive():
        log.warning(
            "the consumer did not leave its group within %.0f s (its coordinator is busy); "
            "the broker drops it after the session timeout",
            timeout_s,
        )
        return False
    return True


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": settings.bootstrap,
            **settings.client_security(),
            "socket.timeout.ms": 10_000,
        }
    )


SCRATCH_TOPIC = re.compile(r"scratch-[a-z0-9-]+-[0-9a-f]{10}")
"""The names ``create_scratch_topic`` gives: ``scratch-<prefix>-<10 hex digits>``."""


def create_scratch_topic(settings: KafkaSettings, prefix: str, timeout_s: float = 30.0) -> str:
    """Create a uniquely named topic shaped like the platform's topics; returns its name.

    For smoke checks, benchmarks and tests: same partitions, replication factor and
    ``min.insync.replicas`` as the real topics, and usable when this returns. The name
    matches ``SCRATCH_TOPIC``, so one left behind by an interrupted run is found by
    ``scratch_topics`` (``fraudstream topics prune``).
    """
    name = f"scratch-{prefix}-{uuid.uuid4().hex[:10]}"
    admin = admin_client(settings)
    spec = NewTopic(
        name,
        num_partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        config={"min.insync.replicas": str(settings.min_insync_replicas)},
    )
    admin.create_topics([spec])[name].result(timeout_s)
    _wait_visible(admin, [name], settings.partitions, timeout_s)
    return name


def delete_topic(settings: KafkaSettings, name: str, timeout_s: float = 30.0) -> None:
    delete_topics(settings, [name], timeout_s)


def delete_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> None:
    if not names:
        return
    admin = admin_client(settings)  # kept until the futures resolve: a dropped client aborts them
    for future in admin.delete_topics(names).values():
        future.result(timeout_s)


def records_in(
    settings: KafkaSettings,
    topics: Iterable[str],
    admin: AdminClient | None = None,
    timeout_s: float = 10.0,
) -> dict[str, int]:
    """Each topic's end offsets summed over its partitions: the records it ever received
    (its count of records when nothing was deleted and no transaction markers were
    written, as with every topic of the platform). Asks the partition leaders, so it
    reads no record and costs the producers and consumers nothing. Pass ``admin`` to
    reuse one client across polls."""
    admin = admin or admin_client(settings)
    names = list(topics)
    metadata = admin.list_topics(timeout=timeout_s).topics
    latest = {
        TopicPartition(name, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
        for name in names
        for p in metadata[name].partitions
    }
    totals = dict.fromkeys(names, 0)
    for part, future in admin.list_offsets(latest, request_timeout=timeout_s).items():
        totals[part.topic] += future.result().offset
    return totals


def scratch_topics(settings: KafkaSettings, timeout_s: float = 10.0) -> dict[str, int]:
    """The cluster's scratch topics (``SCRATCH_TOPIC``) and their partition counts, by name.

    Every partition a broker holds adds to the work of each fetch, so leftovers slow a
    development cluster (docs/scorer.md); the platform's own topics never match.
    """
    listed = admin_client(settings).list_topics(timeout=timeout_s).topics
    return {
        name: len(meta.partitions)
        for name, meta in sorted(listed.items())
        if SCRATCH_TOPIC.fullmatch(name)
    }


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    action: str  # "created", "ok", "partitions increased", "config updated"


def broker_ids(settings: KafkaSettings, timeout_s: float = 10.0) -> list[int]:
    """Ids of the brokers the cluster metadata currently lists."""
    metadata = admin_client(settings).list_topics(timeout=timeout_s)
    return sorted(metadata.brokers)


def ensure_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    timeout_s: float = 30.0,
) -> list[TopicState]:
    """Create missing topics and bring existing ones to the configured shape.

    Idempotent. Partitions are only ever increased (Kafka cannot shrink them);
    ``min.insync.replicas`` is re-applied when it differs. Replication factor of
    an existing topic is reported, not changed: that is a reassignment.
    """
    admin = admin_client(settings)
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout_s).topics
    to_create = [
        NewTopic(
            s.name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config=s.configs(settings.min_insync_replicas),
        )
        for s in specs
        if s.name not in existing
    ]
    actions = {s.name: "ok" for s in specs}
    for name, future in (admin.create_topics(to_create) if to_create else {}).items():
        try:
            future.result(timeout=timeout_s)
            actions[name] = "created"
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    if to_create:
        _wait_visible(admin, [t.topic for t in to_create], settings.partitions, timeout_s)
    _grow_partitions(
        admin, settings, [s for s in specs if actions[s.name] == "ok"], existing, actions, timeout_s
    )
    _apply_configs(admin, settings, specs, actions, timeout_s)
    return describe_topics(settings, specs, actions, timeout_s)


def _wait_visible(admin: AdminClient, names: list[str], partitions: int, timeout_s: float) -> None:
    """Wait until new topics have a leader for every partition, answer config requests and
    every partition's leader answers for its offsets.

    Creation returns before every broker has applied the metadata; describing, or asking
    a leader for offsets, too early fails with UNKNOWN_TOPIC_OR_PART. With partitions
    spread over the brokers, every leader answering means every broker has the topic.
    """
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        for name in list(pending):
            meta = topics.get(name)
            if meta is None or len(meta.partitions) < partitions:
                continue
            if any(p.leader < 0 for p in meta.partitions.values()):
                continue
            resource = ConfigResource(ConfigResource.Type.TOPIC, name)
            latest = {TopicPartition(name, p): OffsetSpec.latest() for p in meta.partitions}  # type: ignore[no-untyped-call]
            try:
                admin.describe_configs([resource])[resource].result(timeout=timeout_s)
                for future in admin.list_offsets(latest, request_timeout=timeout_s).values():
                    future.result()
            except KafkaException:
                continue
            pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise TimeoutError(f"topics {sorted(pending)} did not become available in {timeout_s}s")


def _grow_partitions(
    admin: AdminClient,
    settings: KafkaSettings,
    specs: list[TopicSpec],
    existing: dict[str, Any],
    actions: dict[str, str],
    timeout_s: float,
) -> None:
    grow = [
        NewPartitions(s.name, settings.partitions)
        for s in specs
        if len(existing[s.name].partitions) < settings.partitions
    ]
    for name, future in (admin.create_partitions(grow) if grow else {}).items():
        future.result(timeout=timeout_s)
        actions[name] = "partitions increased"


def _apply_configs(
    admin: AdminClient,
    settings: KafkaSettings,
    specs: list[TopicSpec],
    actions: dict[str, str],
    timeout_s: float,
) -> None:
    resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs]
    by_name = {s.name: s for s in specs}
    for resource, future in admin.describe_configs(resources).items():
        current = {k: v.value for k, v in future.result(timeout=timeout_s).items()}
        wanted = by_name[resource.name].configs(settings.min_insync_replicas)
        if all(current.get(k) == v for k, v in wanted.items()):
            continue
        update = ConfigResource(ConfigResource.Type.TOPIC, resource.name, set_config=wanted)
        for f in admin.alter_configs([update]).values():
            f.result(timeout=timeout_s)
        if actions[resource.name] == "ok":
            actions[resource.name] = "config updated"


def describe_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    actions: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[TopicState]:
    """Partitions, replication factor and min.insync.replicas of each topic, as in the cluster."""
    admin = admin_client(settings)
    specs = list(specs)
    metadata = admin.list_topics(timeout=timeout_s).topics
    resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs]
    isr = {
        r.name: int(f.result(timeout=timeout_s)["min.insync.replicas"].value)
        for r, f in admin.describe_configs(resources).items()
    }
    states = []
    for spec in specs:
        partitions = metadata[spec.name].partitions
        replicas = min(len(p.replicas) for p in partitions.values())
        states.append(
            TopicState(
                spec.name,
                len(partitions),
                replicas,
                isr[spec.name],
                (actions or {}).get(spec.name, "ok"),
            )
        )
    return states
