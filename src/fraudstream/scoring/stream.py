"""The streaming query: Kafka -> card buckets -> merchant buckets (Spark state) -> scores -> sinks.

::

    Kafka `transactions` (spark-sql-kafka-0-10 source, offsets in the checkpoint)
      │  value, key, partition, offset, timestamp; bucket: the key of pmod(xxhash64(card_id), N)
      ▼
    groupBy(bucket).transformWithStateInPandas(CardBuckets)      [executors, RocksDB state]
      │  validate (shared validator) -> dead letters, or update_card in event-time order
      │  rows: rows.CARD_STAGE_SCHEMA; merchant_bucket likewise of merchant_id (buckets.py)
      ▼  union Kafka `transaction_labels`: a keyed label in its merchant's bucket, others in all
    groupBy(merchant_bucket).transformWithStateInPandas(MerchantBuckets)  [executors, state]
      │  labels linked to their merchant, update_merchant in event-time order
      │  rows: rows.MERCHANT_SCHEMA
      ▼
    foreachBatch(BatchHandler)            [driver: plans the batch's jobs, O(1) in rows]
      │  repartition(P, card_id).mapInPandas(ScoreStage)  [P tasks: features, scores,
      │      and in each task, in order: Kafka │ Postgres]   (one Spark job with the stages)
      ▼  its output through Spark's writer: Parquet (or the noop writer)
    then, when states are kept: the online store (a job over the changed states)

Exactly-once for state: Spark commits the card and merchant state with the batch's
offsets of both topics; a replayed batch starts from the state its first attempt saw.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pyspark.accumulators import Accumulator, AccumulatorParam
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)
from pyspark.sql.streaming.readwriter import DataStreamReader
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from fraudstream.adapters.scorer_metrics import LATENCY_BUCKETS, ScorerMetrics
from fraudstream.adapters.spark import PandasMap, freeze_worker_heap
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.rules.ruleset import RuleSet
from fraudstream.scoring.buckets import bucket_of, spread_keys
from fraudstream.scoring.cards import (
    CARD_STATE_LAYOUTS,
    DECODED_CARDS_CAPACITY,
    BucketState,
    DecodedCards,
    LoadedCards,
    Message,
    process_bucket,
)
from fraudstream.scoring.merchant_stage import (
    STATE_TTL_MS,
    MerchantBuckets,
    label_rows,
)
from fraudstream.scoring.reload import ModelHolder, RuleSetHolder
from fraudstream.scoring.rows import (
    CARD_STAGE_SCHEMA,
    MERCHANT_SCHEMA,
    SCORED_SCHEMA,
    TRANSACTION_COLUMNS,
    transaction_values,
)
from fraudstream.scoring.score_stage import ScoreStage
from fraudstream.scoring.sinks.base import ExecutorJob, Partition, Sink
from fraudstream.settings import KafkaSettings, Settings
from fraudstream.topics import TRANSACTION_LABELS
from fraudstream.validation import TransactionValidator

log = logging.getLogger(__name__)

# The packed layout: a bucket's card states as one opaque value (``BucketState.to_bytes``).
_BUCKET_STATE = StructType([StructField("packed", BinaryType())])
CARD_STATE_VARIABLE = "card_bucket"
# The per-card layout: card id -> the card's ``features.codec`` bytes.
_CARD_KEY = StructType([StructField("card_id", StringType())])
_CARD_VALUE = StructType([StructField("state", BinaryType())])
CARD_MAP_VARIABLE = "cards"
CARD_STATE_TTL_MS = STATE_TTL_MS
"""A card unseen for this long (processing time) leaves the per-card state (see
``merchant_stage.STATE_TTL_MS``): a card idle for the horizon has a new card's features."""

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
        freeze_worker_heap()  # once per task
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
        none = [None] * len(out)
        values = [
            transaction_values(r.txn) if r.txn is not None else [None] * len(TRANSACTION_COLUMNS)
            for r in out
        ]
        columns: dict[str, list[Any]] = {
            "kind": ["txn" if r.reason is None else "dead" for r in out],
            **{name: [v[i] for v in values] for i, name in enumerate(TRANSACTION_COLUMNS)},
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
        }
        # Every column the stage does not set None (object dtype), not NaN: Arrow would
        # refuse a NaN where the schema has an array, and turn integer columns into floats.
        frame = pd.DataFrame(
            {
                name: pd.Series(columns.get(name, none), dtype=object)
                for name in CARD_STAGE_SCHEMA.fieldNames()
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
            states["entity"] = "card"
            states["state"] = list(touched.values())
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
    labels_topic: str = TRANSACTION_LABELS.name
    """The topic the merchant stage reads fraud verdicts from."""
    merchant_delay_s: float = 0.0
    """The merchant order rule's event-time delay (``scoring.merchants``): 0 scores each
    transaction in the batch that brings it."""
    merchant_release_s: float = 30.0
    """Processing time after which a merchant bucket without input releases what the
    order rule holds (the stream's tail)."""
    label_links: bool = True
    """Link every transaction in the merchant state, for labels that do not carry their
    transaction's keys (``scoring.merchants``)."""
    bucket_spread: int = 1
    """The partitions the bucket keys are spread over (``scoring.buckets``): the stateful
    stages' partitions when the checkpoint was created, recorded in it."""

    @property
    def bucket_keys(self) -> tuple[int, ...]:
        """The grouping key of each card and merchant bucket (both stages have ``buckets``)."""
        return spread_keys(self.buckets, self.bucket_spread)


def _kafka_reader(
    spark: SparkSession, settings: Settings, topic: str, starting: str
) -> DataStreamReader:
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(settings.kafka).items():
        reader = reader.option(key, value)
    return reader.option("subscribe", topic).option("startingOffsets", starting)


def card_stage(spark: SparkSession, settings: Settings, options: StreamOptions) -> DataFrame:
    """The transactions topic through the card-bucket stage (``rows.CARD_STAGE_SCHEMA``)."""
    reader = _kafka_reader(spark, settings, options.source_topic, options.starting_offsets)
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
    source = reader.load().select(
        "value",
        "key",
        "topic",
        "partition",
        "offset",
        F.unix_millis("timestamp").alias("kafka_ts_ms"),
        bucket_of(
            F.get_json_object(F.col("value").cast("string"), "$.card_id"), options.bucket_keys
        ).alias("bucket"),
    )
    return source.groupBy("bucket").transformWithStateInPandas(
        statefulProcessor=CardBuckets(
            options.emit_states, options.card_state, options.decoded_cards
        ),
        outputStructType=CARD_STAGE_SCHEMA,
        # Append: another stateful operator (the merchant stage) follows in the same query.
        outputMode="Append",
        # Spark's state TTL runs on processing time, and only in that time mode; it also
        # makes Spark run a (cheap) micro-batch per trigger while the topic is idle.
        timeMode="ProcessingTime" if options.card_state == "per-card" else "None",
    )


STATE_SERVER_LOGGER = (
    "org.apache.spark.sql.execution.python.streaming.TransformWithStateInPySparkStateServer"
)
"""Spark's bridge to the Python state API: it logs a warning for every map-state lookup of a
key that is not there, which the merchant stage does for every new merchant and, for each
label, in every bucket but the one holding its transaction."""


def quiet_state_server(spark: SparkSession) -> None:
    """Raise the state bridge's log level to ERROR in this JVM (the driver's, which runs the
    tasks in local mode; executors elsewhere keep their own log4j configuration)."""
    jvm: Any = getattr(spark.sparkContext, "_jvm", None)
    if jvm is not None:
        log4j = jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setLevel(STATE_SERVER_LOGGER, log4j.Level.ERROR)


def stage_frame(
    spark: SparkSession,
    settings: Settings,
    options: StreamOptions,
    counts: Accumulator[Counter[Any]] | None = None,
) -> DataFrame:
    """Both stateful stages: card buckets, then merchant buckets with the labels topic
    (rows as ``rows.MERCHANT_SCHEMA``). Merchant buckets are as many as card buckets
    (``options.buckets``, fixed for a checkpoint's life). ``counts``: the batch handler's
    accumulator (``BatchHandler.counts``), which counts the labels read."""
    quiet_state_server(spark)
    cards = card_stage(spark, settings, options)
    # A transaction goes to its merchant's bucket; dead letters and card states (no
    # merchant) pass through the stage, spread by their own key.
    key = F.coalesce("merchant_id", "card_id", F.col("dead_letter_key").cast("string"))
    routed = cards.withColumn("merchant_bucket", bucket_of(key, options.bucket_keys))
    labels = _kafka_reader(spark, settings, options.labels_topic, options.starting_offsets)
    merged = routed.unionByName(label_rows(labels.load(), options.bucket_keys, counts))
    merchants: DataFrame = merged.groupBy("merchant_bucket").transformWithStateInPandas(
        statefulProcessor=MerchantBuckets(
            options.merchant_delay_s,
            int(options.merchant_release_s * 1000),
            options.emit_states,
            options.label_links,
        ),
        outputStructType=MERCHANT_SCHEMA,
        outputMode="Append",
        # Processing time: the state's TTL and the order rule's release timer need it.
        timeMode="ProcessingTime",
    )
    return merchants


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
    Kafka CreateTime), from the scoring tasks' 10 ms histogram."""


class CountsParam(AccumulatorParam[Counter[Any]]):
    """A Spark accumulator of counters: the scoring tasks' counts reach the driver with
    the tasks' results, so the driver reads a few numbers per batch, never rows."""

    def zero(self, value: Counter[Any]) -> Counter[Any]:
        return Counter()

    def addInPlace(self, value1: Counter[Any], value2: Counter[Any]) -> Counter[Any]:  # noqa: N802
        value1.update(value2)
        return value1


def _percentiles(histogram: Mapping[Any, float]) -> list[float]:
    """Percentiles 1 to 99 (seconds) of a histogram of latencies in 10 ms steps."""
    total = sum(histogram.values())
    if not total:
        return []
    out, seen, steps = [], 0.0, sorted(histogram.items())
    i = 0
    for p in range(1, 100):
        while seen + steps[i][1] < total * p / 100 and i < len(steps) - 1:
            seen += steps[i][1]
            i += 1
        out.append(steps[i][0] / 100)
    return out


@dataclass
class _BatchPlan:
    """What every micro-batch's plan reuses, built once in the driver: column expressions,
    the state sinks' jobs and the scoring function of the served versions. Built per
    batch, they cost the driver about a hundred calls into the JVM and a pickling of the
    scoring function each time."""

    row_count: Column
    scored_kinds: Column
    state_kind: Column
    state_columns: tuple[Column, ...]
    state_jobs: list[tuple[Sink, ExecutorJob]]
    score: PandasMap | None = None
    versions: tuple[str, str | None, str | None] | None = None
    """The champion's, the shadow's and the rule set's versions ``score`` serves."""

    @classmethod
    def build(cls, spark: SparkSession, state_sinks: list[Sink]) -> _BatchPlan:
        columns = ("entity", "id", "state")  # the card and merchant states a batch changed
        return cls(
            row_count=F.count(F.lit(1)).alias("rows"),
            scored_kinds=F.col("kind").isin("txn", "dead"),
            state_kind=F.col("kind") == "state",
            state_columns=(
                F.col("entity"),
                F.coalesce(
                    F.when(F.col("entity") == "card", F.col("card_id")), F.col("merchant_id")
                ).alias("id"),
                F.col("state"),
            ),
            state_jobs=[
                (sink, ExecutorJob(spark, sink, lambda rows: Partition(states=rows), columns))
                for sink in state_sinks
            ],
        )


@dataclass
class BatchHandler:
    """foreachBatch: plans one micro-batch's stages and sinks; the rows stay on executors.

    The driver's work per batch does not grow with it: it reads which model versions
    and which rule set serve, starts one Spark job (both stateful stages, then the
    scoring tasks, which score and write every sink that runs in them: ``sinks.base``),
    then the state sinks' job when there is one, and records metrics from the counts the
    scoring tasks add to an accumulator. A batch whose stateful stages give no row (a
    trigger on an idle topic, run for the state's timers and time to live) records nothing.
    """

    settings: Settings
    options: StreamOptions
    champion: ModelHolder
    shadow: ModelHolder | None
    sinks: list[Sink]
    metrics: ScorerMetrics
    rules: RuleSetHolder | None = None
    """The active rule set's holder (None: the champion decides alone)."""
    report: BatchReport = field(default_factory=BatchReport)
    finished: int = 0
    """Micro-batches the handler returned from (or failed) so far, idle triggers included."""
    _counts: Accumulator[Counter[Any]] | None = None
    _plan: _BatchPlan | None = None
    _partitions: int | None = None
    _counted: Counter[Any] = field(default_factory=Counter)

    def refresh_models(self) -> None:
        """Poll the aliases and the active rule set when due; called by the driver's watch
        loop, not by a batch, so a promotion or an activation is picked up on an idle stream
        too. A batch reads ``current`` once."""
        if self.rules is not None:
            self.rules.refresh()
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

    def counts(self, spark: SparkSession) -> Accumulator[Counter[Any]]:
        """The accumulator the batch's tasks count into (created once): the scoring tasks,
        and the label parser of the stateful part (``stage_frame``)."""
        if self._counts is None:
            self._counts = spark.sparkContext.accumulator(Counter(), CountsParam())
        return self._counts

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        try:
            self._handle(frame, batch_id)
        finally:
            self.finished += 1

    def _handle(self, frame: DataFrame, batch_id: int) -> None:
        champion = self.champion.current  # swapped only between batches (see refresh_models)
        if champion is None:
            raise RuntimeError(f"no model at @{self.champion.alias}: cannot score")
        shadow = self.shadow.current if self.shadow else None
        rules = self.rules.current if self.rules else None
        plan = self._plan_for(
            frame.sparkSession, champion.version, shadow.version if shadow else None, rules
        )
        writers = [s for s in self.sinks if s.reads == "frame"]
        # The stage's row count comes back with the job (Spark's observed metrics).
        observed = Observation(f"stage-rows-{batch_id}")
        stage = frame.observe(observed, plan.row_count)
        if plan.state_jobs:
            stage = stage.persist()  # read again by the state sinks' job: run the stages once
        try:
            rows = stage.where(plan.scored_kinds)
            if self._stage_partitions(frame) < self.options.score_partitions:
                # Fewer state partitions than cores: spread the scoring over the cores.
                rows = rows.repartition(self.options.score_partitions, "card_id")
            assert plan.score is not None
            scored = plan.score.apply(rows)
            started = time.perf_counter()
            # One Spark job runs both stateful stages, the scoring and the sinks in its
            # tasks; a sink with Spark's writer is that job's output (a second one would
            # run the batch again, harmlessly: every write is idempotent by key).
            for writer in writers:
                writer.save(scored, batch_id)
            if not writers:
                scored.write.format("noop").mode("overwrite").save()
            if not observed.get["rows"]:
                return  # nothing came out: an idle trigger, or input the merchant stage holds
            self.metrics.stage_seconds.labels("batch").observe(time.perf_counter() - started)
            states = stage.where(plan.state_kind).select(*plan.state_columns)
            for sink, job in plan.state_jobs:
                began = time.perf_counter()
                job.run(states)
                self.metrics.stage_seconds.labels(sink.name).observe(time.perf_counter() - began)
            self._account(champion.version)
        finally:
            if plan.state_jobs:
                stage.unpersist()

    def _plan_for(
        self, spark: SparkSession, champion: str, shadow: str | None, rules: RuleSet | None
    ) -> _BatchPlan:
        """The batch's plan pieces, built on the first batch; the scoring function again
        only when a served model version or the rule set changes (it names the versions it
        loads and carries the set)."""
        if self._plan is None:
            self.counts(spark)
            self._plan = _BatchPlan.build(spark, [s for s in self.sinks if s.reads == "states"])
        plan = self._plan
        versions = (champion, shadow, rules.version if rules else None)
        if plan.versions != versions:
            stage = ScoreStage(
                self.settings,
                champion,
                shadow,
                self._counts,
                tuple(s for s in self.sinks if s.reads == "scored"),
                emit=any(s.reads == "frame" for s in self.sinks),
                rules=rules,
            )
            plan.score = PandasMap(stage, MERCHANT_SCHEMA.fieldNames(), SCORED_SCHEMA)
            plan.versions = versions
        return plan

    def _stage_partitions(self, frame: DataFrame) -> int:
        """The stateful stages' partitions: the checkpoint's ``spark.sql.shuffle.partitions``
        (the batch's session carries the value its checkpoint was created with)."""
        if self._partitions is None:
            self._partitions = int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)
        return self._partitions

    def _account(self, version: str) -> None:
        """Counters, latencies and the report from the scoring tasks' counts of this batch
        (the accumulator's growth since the last batch)."""
        assert self._counts is not None
        total = Counter(self._counts.value)
        delta = total - self._counted  # counts only grow; Counter subtraction drops zeros
        self._counted = total
        report, metrics = self.report, self.metrics
        report.batches += 1
        for key, n in delta.items():
            if isinstance(key, tuple) and key[0] == "dead":
                metrics.dead_letters.labels(str(key[1])).inc(n)
                report.dead_letters += int(n)
        for key, n in delta.items():
            if isinstance(key, tuple) and key[0] == "seconds":
                metrics.stage_seconds.labels(str(key[1])).observe(n)
            elif isinstance(key, tuple) and key[0] == "outcome":
                metrics.decisions.labels(str(key[1])).inc(n)
            elif isinstance(key, tuple) and key[0] == "rule":
                metrics.rule_hits.labels(str(key[1])).inc(n)
            elif isinstance(key, tuple) and key[0] == "labels":
                metrics.labels_read.labels(str(key[1])).inc(n)
        n, alerts, late = int(delta["scored"]), int(delta["alerts"]), int(delta["late"])
        if not n:
            return
        metrics.latency.add(
            [int(delta[("le", i)]) for i in range(len(LATENCY_BUCKETS))],
            n,
            float(delta["latency_sum"]),
        )
        metrics.scored.inc(n)
        metrics.alerts.inc(alerts)
        metrics.late.inc(late)
        report.scored += n
        report.alerts += alerts
        report.late += late
        histogram = {k[1]: v for k, v in delta.items() if isinstance(k, tuple) and k[0] == "10ms"}
        report.latencies.extend(_percentiles(histogram))
        del report.latencies[:-10_000]
        report.versions.add(version)
