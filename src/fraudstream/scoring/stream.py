"""The streaming query: Kafka -> card buckets (Spark state) -> merchants -> scores -> sinks.

::

    Kafka `transactions` (spark-sql-kafka-0-10 source, offsets in the checkpoint)
      │  value, key, partition, offset, timestamp; bucket = pmod(xxhash64(card_id), N)
      ▼
    groupBy(bucket).transformWithStateInPandas(CardBuckets)      [executors, RocksDB state]
      │  validate (shared validator) -> dead letters, or update_card in event-time order
      │  rows: kind, transaction_id, record, card_features, late, dead_letter, offsets
      ▼
    foreachBatch(BatchHandler)            [driver: plans the batch's jobs, O(1) in rows]
      │  repartition(1).mapInPandas(MerchantStage)   [one task: labels, merchant book]
      │  repartition(P, card_id).mapInPandas(ScoreStage)  [P tasks: features, scores]
      ▼
    each sink from the executors, in order: Kafka │ Postgres │ Parquet │ online store

Exactly-once for state: Spark commits the card state with the batch's offsets, and
the merchant book is saved per batch id and reloaded for a replayed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fraudstream.adapters.scorer_metrics import LATENCY_BUCKETS, ScorerMetrics
from fraudstream.features.catalogue import FEATURE_SET_VERSION, HISTORY_S
from fraudstream.scoring.cards import (
    CARD_STATE_LAYOUTS,
    DECODED_CARDS_CAPACITY,
    BucketState,
    DecodedCards,
    LoadedCards,
    Message,
    process_bucket,
)
from fraudstream.scoring.merchant_stage import MERCHANT_SCHEMA, MerchantStage
from fraudstream.scoring.reload import ModelHolder
from fraudstream.scoring.score_stage import SCORED_SCHEMA, ScoreStage
from fraudstream.scoring.sinks.base import MicroBatch, Sink
from fraudstream.settings import KafkaSettings, Settings
from fraudstream.validation import TransactionValidator

log = logging.getLogger(__name__)

STAGE_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        StructField("transaction_id", StringType()),
        StructField("card_id", StringType()),
        StructField("record", StringType()),
        StructField("card_features", ArrayType(DoubleType())),
        StructField("late", BooleanType()),
        StructField("reason", StringType()),
        StructField("dead_letter", BinaryType()),
        StructField("dead_letter_key", BinaryType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_ts_ms", LongType()),
        StructField("card_state", BinaryType()),
    ]
)
# The packed layout: a bucket's card states as one opaque value (``BucketState.to_bytes``).
_BUCKET_STATE = StructType([StructField("packed", BinaryType())])
CARD_STATE_VARIABLE = "card_bucket"
# The per-card layout: card id -> the card's ``features.codec`` bytes.
_CARD_KEY = StructType([StructField("card_id", StringType())])
_CARD_VALUE = StructType([StructField("state", BinaryType())])
CARD_MAP_VARIABLE = "cards"
CARD_STATE_TTL_MS = int((HISTORY_S + 7 * 86_400) * 1000)
"""A card unseen for this long (processing time) leaves the per-card state: the history
horizon plus a week. A card idle for the horizon in event time has a new card's features,
so dropping it changes nothing, as long as the stream's event time does not fall more than
the extra week behind the clock (a backlog or outage longer than that)."""

SPARK_KAFKA_FETCH_MAX_WAIT_MS = 10

WORKER_CARDS = DecodedCards()
"""The decoded card states of this Python worker process, kept across micro-batches (Spark
reuses its workers): a card whose stored bytes are the ones a batch of this worker wrote
is not decoded again. Empty in the driver, which never runs the stage."""


class CardBuckets(StatefulProcessor):
    """One grouping key per card bucket; its card states in either layout (``scoring.cards``).

    ``per-card``: a MapState with one entry per card, only the touched ones read and
    written, each with a time to live (``CARD_STATE_TTL_MS``) so idle cards leave the
    state. ``packed``: one ValueState holding the whole bucket (``BucketState.to_bytes``).
    """

    def __init__(
        self,
        emit_states: bool = False,
        layout: str = "packed",
        decoded_cards: int = DECODED_CARDS_CAPACITY,
    ) -> None:
        if layout not in CARD_STATE_LAYOUTS:
            raise ValueError(f"card-state layout {layout!r}: use one of {list(CARD_STATE_LAYOUTS)}")
        self.emit_states = emit_states
        self.layout = layout
        self.decoded_cards = decoded_cards

    def init(self, handle: StatefulProcessorHandle) -> None:
        if self.layout == "per-card":
            self.card_map = handle.getMapState(
                CARD_MAP_VARIABLE, _CARD_KEY, _CARD_VALUE, CARD_STATE_TTL_MS
            )
        else:
            self.cards = handle.getValueState(CARD_STATE_VARIABLE, _BUCKET_STATE)
        self.validator = TransactionValidator()
        WORKER_CARDS.resize(self.decoded_cards)

    def _load_card(self, card_id: str) -> bytes | None:
        stored = self.card_map.getValue((card_id,))
        return None if stored is None else bytes(stored[0])

    def handleInputRows(  # noqa: N802 (Spark's name)
        self,
        key: Any,
        rows: Iterator[pd.DataFrame],
        timerValues: Any,  # noqa: N803 (Spark passes it by this name)
    ) -> Iterator[pd.DataFrame]:
        messages = [
            Message(v, k, t, int(p), int(o), int(ts))
            for frame in rows
            for v, k, t, p, o, ts in zip(
                frame["value"],
                frame["key"],
                frame["topic"],
                frame["partition"],
                frame["offset"],
                frame["kafka_ts_ms"],
                strict=True,
            )
        ]
        if self.layout == "per-card":
            loaded = LoadedCards(self._load_card, WORKER_CARDS)
            out = process_bucket(loaded, messages, self.validator, datetime.now(UTC))
            touched = loaded.updated()
            for card_id, blob in touched.items():
                self.card_map.updateValue((card_id,), (blob,))
        else:
            stored = self.cards.get()  # None for a new bucket (saves an exists() round trip)
            bucket = (
                BucketState.from_bytes(stored[0], WORKER_CARDS)
                if stored
                else BucketState(decoded=WORKER_CARDS)
            )
            out = process_bucket(bucket, messages, self.validator, datetime.now(UTC))
            changed = list(bucket.cards)
            if bucket.blobs or bucket.cards:
                self.cards.update((bucket.to_bytes(),))  # re-encodes the touched cards
            else:
                self.cards.clear()
            touched = {c: bucket.blobs[c] for c in changed if c in bucket.blobs}
        if not self.emit_states:
            touched = {}
        frame = pd.DataFrame(
            {
                "kind": ["txn" if r.reason is None else "dead" for r in out],
                "transaction_id": [r.transaction_id for r in out],
                "card_id": [r.card_id for r in out],
                "record": [r.record for r in out],
                "card_features": [r.card_features for r in out],
                "late": [r.late for r in out],
                "reason": [r.reason for r in out],
                "dead_letter": [r.dead_letter for r in out],
                "dead_letter_key": [
                    None
                    if r.reason is None
                    else f"{r.message.topic}/{r.message.partition}/{r.message.offset}".encode()
                    for r in out
                ],
                "partition": [r.message.partition for r in out],
                "offset": [r.message.offset for r in out],
                "kafka_ts_ms": [r.message.timestamp_ms for r in out],
                "card_state": [None] * len(out),
            }
        )
        if touched:
            # Every other column None (object dtype), not NaN: Arrow would refuse a NaN where
            # the schema has an array, and turn the integer columns into floats.
            states = pd.DataFrame(
                {name: pd.Series([None] * len(touched), dtype=object) for name in frame.columns}
            )
            states["kind"] = "state"
            states["card_id"] = list(touched)
            states["card_state"] = list(touched.values())
            frame = pd.concat([frame, states], ignore_index=True)
        yield frame

    def close(self) -> None:
        pass


def kafka_options(kafka: KafkaSettings) -> dict[str, str]:
    """Spark's ``kafka.*`` options for the configured cluster (SASL/TLS as the other clients)."""
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap,
        "kafka.security.protocol": kafka.security_protocol,
        # A task's consumer reads a fixed offset range and then stops; a fetch may wait on
        # the broker up to this long for more data. Measured with the client's default of
        # 500 ms, a batch read of 1,000 records in 6 partitions took 1.8 s, with 10 ms
        # 0.27 s; a micro-batch without state fell from 1.8 s to 0.4 s (docs/scorer.md).
        "kafka.fetch.max.wait.ms": str(SPARK_KAFKA_FETCH_MAX_WAIT_MS),
    }
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{kafka.sasl_username}" '
            f'password="{kafka.sasl_password.get_secret_value()}";'
        )
    if kafka.ssl_ca_location:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka.ssl_ca_location)
    return options


@dataclass(frozen=True)
class StreamOptions:
    """What one scorer run reads, where it keeps its checkpoint and how it batches."""

    source_topic: str
    checkpoint: str
    parquet_uri: str | None
    buckets: int
    trigger_s: float
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    emit_states: bool = False
    card_state: str = "packed"
    decoded_cards: int = DECODED_CARDS_CAPACITY
    score_partitions: int = 2
    """Tasks of the scoring stage (and of the sinks after it) per micro-batch: the
    executor cores, so each core scores and writes its share."""


def stage_frame(spark: SparkSession, settings: Settings, options: StreamOptions) -> DataFrame:
    """The Kafka source through the card-bucket stage (rows as ``STAGE_SCHEMA``)."""
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(settings.kafka).items():
        reader = reader.option(key, value)
    reader = reader.option("subscribe", options.source_topic).option(
        "startingOffsets", options.starting_offsets
    )
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
    source = reader.load().select(
        "value",
        "key",
        "topic",
        "partition",
        "offset",
        F.unix_millis("timestamp").alias("kafka_ts_ms"),
        F.pmod(
            F.xxhash64(F.get_json_object(F.col("value").cast("string"), "$.card_id")),
            F.lit(options.buckets),
        ).alias("bucket"),
    )
    return source.groupBy("bucket").transformWithStateInPandas(
        statefulProcessor=CardBuckets(
            options.emit_states, options.card_state, options.decoded_cards
        ),
        outputStructType=STAGE_SCHEMA,
        outputMode="Update",
        # Spark's state TTL runs on processing time, and only in that time mode; it also
        # makes Spark run a (cheap) micro-batch per trigger while the topic is idle.
        timeMode="ProcessingTime" if options.card_state == "per-card" else "None",
    )


@dataclass
class BatchReport:
    """What the handler did so far (for the CLI summary and tests)."""

    batches: int = 0
    scored: int = 0
    alerts: int = 0
    dead_letters: int = 0
    late: int = 0
    versions: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    """Per micro-batch, the percentiles 1 to 99 of its latencies (``scored_at`` minus the
    Kafka CreateTime; Spark's approximation)."""


_PERCENTILES = [p / 100 for p in range(1, 100)]


def _union(frames: list[DataFrame | None]) -> DataFrame | None:
    present = [f for f in frames if f is not None]
    if not present:
        return None
    out = present[0]
    for frame in present[1:]:
        out = out.unionByName(frame)
    return out


@dataclass
class BatchHandler:
    """foreachBatch: plans one micro-batch's stages and sinks; the rows stay on executors.

    The driver's work per batch does not grow with it: it reads which model versions
    serve, starts the Spark jobs (the card stage with its counts per kind, the merchant
    and scoring stages, each sink in order, the batch's statistics) and records
    metrics from a handful of aggregate rows.
    """

    settings: Settings
    options: StreamOptions
    champion: ModelHolder
    shadow: ModelHolder | None
    sinks: list[Sink]
    metrics: ScorerMetrics
    report: BatchReport = field(default_factory=BatchReport)

    def refresh_models(self) -> None:
        """Poll the aliases when due; called by the driver's watch loop, not by a batch, so a
        promotion is picked up on an idle stream too. A batch reads ``current`` once."""
        for holder in (self.champion, self.shadow):
            if holder is None:
                continue
            before = (holder.counts.loaded, holder.counts.refused, holder.counts.failed)
            holder.refresh()
            after = (holder.counts.loaded, holder.counts.refused, holder.counts.failed)
            for result, b, a in zip(("loaded", "refused", "failed"), before, after, strict=True):
                if a > b:
                    self.metrics.reloads.labels(result).inc(a - b)
            version = holder.current.version if holder.current else None
            self.metrics.set_model(holder.alias, version, FEATURE_SET_VERSION)

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        champion = self.champion.current  # swapped only between batches (see refresh_models)
        if champion is None:
            raise RuntimeError(f"no model at @{self.champion.alias}: cannot score")
        shadow = self.shadow.current if self.shadow else None
        stage = frame.persist()  # the card stage runs once; its state commits with the batch
        cached = [stage]
        try:
            started = time.perf_counter()
            # The card stage runs here; one row per (kind, dead-letter reason) comes back.
            kinds = {
                (r["kind"], r["reason"]): int(r["count"])
                for r in stage.groupBy("kind", "reason").count().collect()
            }
            staged = time.perf_counter()
            self.metrics.stage_seconds.labels("card_stage").observe(staged - started)
            scored: DataFrame | None = None
            merchant_states: DataFrame | None = None
            stats: Row | None = None
            if kinds.get(("txn", None)):
                scored, merchant_states = self._score(stage, batch_id, champion.version, shadow)
                cached += [scored, merchant_states]
                stats = scored_statistics(scored)  # the merchant and scoring stages run here
            scoring = time.perf_counter()
            self.metrics.stage_seconds.labels("features_and_scoring").observe(scoring - staged)
            batch = self._outputs(stage, batch_id, kinds, scored, merchant_states)
            for sink in self.sinks:
                began = time.perf_counter()
                sink.run(batch)
                self.metrics.stage_seconds.labels(sink.name).observe(time.perf_counter() - began)
            self.metrics.stage_seconds.labels("sinks").observe(time.perf_counter() - scoring)
            self._account(stats, kinds, champion.version)
        finally:
            for cache in cached:
                cache.unpersist()

    def _score(
        self, stage: DataFrame, batch_id: int, champion: str, shadow: Any
    ) -> tuple[DataFrame, DataFrame]:
        """The scoring stage's rows (``score_partitions`` tasks) and the merchant stage's
        (one task), both persisted (nothing runs yet)."""
        txns = stage.where(F.col("kind") == "txn").select(
            "transaction_id", "card_id", "record", "card_features", "late",
            "partition", "offset", "kafka_ts_ms",
        )  # fmt: skip
        merchants = (
            txns.repartition(1)
            .mapInPandas(
                MerchantStage(
                    self.settings, self.options.checkpoint, batch_id, self.options.emit_states
                ),
                MERCHANT_SCHEMA,
            )
            .persist()
        )
        scored = (
            merchants.where(F.col("kind") == "txn")
            .repartition(self.options.score_partitions, "card_id")
            .mapInPandas(
                ScoreStage(self.settings, champion, shadow.version if shadow else None),
                SCORED_SCHEMA,
            )
            .persist()
        )
        return scored, merchants

    def _outputs(
        self,
        stage: DataFrame,
        batch_id: int,
        kinds: dict[tuple[str, str | None], int],
        scored: DataFrame | None,
        merchants: DataFrame | None,
    ) -> MicroBatch:
        dead = None
        if any(kind == "dead" for kind, _ in kinds):
            dead = stage.where(F.col("kind") == "dead").select(
                F.col("dead_letter_key").alias("key"), F.col("dead_letter").alias("value"), "reason"
            )
        states: list[DataFrame | None] = []
        if self.options.emit_states:
            if kinds.get(("state", None)):
                states.append(
                    stage.where(F.col("kind") == "state").select(
                        F.lit("card").alias("entity"),
                        F.col("card_id").alias("id"),
                        F.col("card_state").alias("state"),
                    )
                )
            if merchants is not None:
                states.append(
                    merchants.where(F.col("kind") == "state").select(
                        F.lit("merchant").alias("entity"),
                        F.col("merchant_id").alias("id"),
                        F.col("merchant_state").alias("state"),
                    )
                )
        return MicroBatch(batch_id, scored, dead, _union(states))

    def _account(
        self, stats: Row | None, kinds: dict[tuple[str, str | None], int], version: str
    ) -> None:
        """Counters, latencies and the report from the batch's aggregate rows."""
        report, metrics = self.report, self.metrics
        report.batches += 1
        for (kind, reason), n in kinds.items():
            if kind == "dead":
                metrics.dead_letters.labels(str(reason)).inc(n)
                report.dead_letters += n
        if stats is None:
            return
        n, alerts, late = int(stats["n"]), int(stats["alerts"] or 0), int(stats["late"] or 0)
        metrics.latency.add(
            [int(stats[f"le_{i}"] or 0) for i in range(len(LATENCY_BUCKETS))],
            n,
            float(stats["latency_sum"] or 0.0),
        )
        metrics.scored.inc(n)
        metrics.alerts.inc(alerts)
        metrics.late.inc(late)
        report.scored += n
        report.alerts += alerts
        report.late += late
        report.latencies.extend(float(v) for v in stats["percentiles"] or [])
        del report.latencies[:-10_000]
        report.versions.add(version)


def scored_statistics(scored: DataFrame) -> Row:
    """One row of a batch's scored rows: count, alerts, late rows and their latencies
    (``scored_at - ingest_time``: per bucket, summed, and percentiles 1 to 99)."""
    latency = (F.col("scored_at_us") - F.col("ingest_time_us")) / 1_000_000
    row = scored.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("is_alert").cast("long")).alias("alerts"),
        F.sum(F.col("late_event").cast("long")).alias("late"),
        F.sum(latency).alias("latency_sum"),
        F.percentile_approx(latency, _PERCENTILES, 1000).alias("percentiles"),
        *(
            F.sum((latency <= bound).cast("long")).alias(f"le_{i}")
            for i, bound in enumerate(LATENCY_BUCKETS)
        ),
    ).first()
    assert row is not None  # an aggregate without grouping always has its one row
    return row
