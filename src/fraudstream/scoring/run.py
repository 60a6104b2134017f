"""Start, watch and stop one scorer: models, sinks, metrics, the query and its summary.

Used by ``fraudstream score`` and ``jobs/score_stream.py``. The query runs until
``duration_s`` passes (bounded local runs, the demo, tests), or until SIGTERM/Ctrl-C,
and then stops between micro-batches: everything a finished batch wrote is committed,
and an unfinished batch is replayed by the next start.

Faults, innermost first: each sink and registry read retries a transient failure
(``adapters.retry``) within ``ScorerSettings.retry_budget_s``; a micro-batch that still
fails on a transient error is run again in place (``RetryingBatches``) within the same
budget; a query that fails all the same is started again from its checkpoint
(``run_scorer``), after a doubling wait, up to ``max_restarts`` times in a row, each
restart logged and counted (``fraudstream_scorer_restarts_total``). Errors no wait can
fix (credentials, schema, a refused checkpoint) end the run at once.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fraudstream.adapters.object_store import Location
from fraudstream.adapters.partitions import ensure_ahead
from fraudstream.adapters.registry import fail_fast_http
from fraudstream.adapters.retry import RetryPolicy, retry, transient
from fraudstream.adapters.scorer_metrics import ScorerMetrics
from fraudstream.adapters.spark import build_session, checkpoint_conf
from fraudstream.platform.spark_jars import spark_jars
from fraudstream.scoring.cards import CARD_STATE_LAYOUTS
from fraudstream.scoring.reload import registry_holder, rule_set_holder
from fraudstream.scoring.sinks.base import Sink
from fraudstream.scoring.sinks.kafka import KafkaSink, OutputTopics
from fraudstream.scoring.sinks.online_store import OnlineStoreSink
from fraudstream.scoring.sinks.parquet import ParquetSink
from fraudstream.scoring.sinks.postgres import PostgresSink
from fraudstream.scoring.stream import BatchHandler, BatchReport, StreamOptions, stage_frame
from fraudstream.settings import ScorerSettings, Settings, SparkSettings

log = logging.getLogger(__name__)

PROGRESS_IDLE_S = 5.0
"""How often the watch loop reads Spark's progress when no batch ran since the last read."""


class NoModelError(RuntimeError):
    """The alias the scorer serves points at nothing it can load."""


class MissingTopicError(RuntimeError):
    """A topic the scorer reads or writes does not exist (topics are not auto-created)."""


class CheckpointBucketsError(RuntimeError):
    """The run asks for another card-bucket count than the checkpoint's card state uses."""


def check_buckets(checkpoint: Location, buckets: int, layout: str = "packed") -> str:
    """Refuse a checkpoint whose card state this run would misread; record a new one's shape.

    A card's bucket is ``pmod(xxhash64(card_id), buckets)``: with another count a card
    would be looked up in a bucket that does not hold its state and silently start
    afresh. The count is recorded as ``<checkpoint>/card-buckets/<count>`` and the state
    layout as ``<checkpoint>/card-state/<number>`` (``CARD_STATE_LAYOUTS``). Returns the
    layout to run with: ``layout`` for a new checkpoint, the recorded one for an existing
    checkpoint (a warning says so when they differ: the layouts give the same features).
    A checkpoint with Spark offsets but no readable layout record was written by an
    earlier scorer whose state this one cannot read.
    """
    numbers = {str(n): name for name, n in CARD_STATE_LAYOUTS.items()}
    recorded_layouts = [
        numbers[n.rsplit("/", 1)[-1]]
        for n in checkpoint.list("card-state")
        if n.rsplit("/", 1)[-1] in numbers
    ]
    started = bool(checkpoint.list("spark/offsets"))
    if started and not recorded_layouts:
        raise CheckpointBucketsError(
            f"checkpoint {checkpoint.uri} was written by an earlier scorer, whose card-state "
            f"layout this version does not read: start a new checkpoint (--checkpoint or "
            f"FRAUDSTREAM_SCORER_CHECKPOINT; it reads the topic from --starting-offsets), or "
            f"finish this one with the version that wrote it"
        )
    names = [n.rsplit("/", 1)[-1] for n in checkpoint.list("card-buckets")]
    recorded = sorted(int(n) for n in names if n.isdigit())
    if recorded and recorded[0] != buckets:
        raise CheckpointBucketsError(
            f"checkpoint {checkpoint.uri} keeps its card state in {recorded[0]} buckets and "
            f"this run asks for {buckets}; the count is fixed for a checkpoint's life: run "
            f"with {recorded[0]} buckets (--buckets or FRAUDSTREAM_SCORER_BUCKETS), or start "
            "a new checkpoint (--checkpoint)"
        )
    if not recorded:
        checkpoint.write(f"card-buckets/{buckets}", str(buckets).encode())
    if recorded_layouts:
        kept = recorded_layouts[0]
        if kept != layout:
            log.warning(
                "checkpoint %s keeps its card state in the %s layout; running with it, not "
                "%s (a layout is fixed for a checkpoint's life; a new checkpoint takes the "
                "configured one)",
                checkpoint.uri,
                kept,
                layout,
            )
        return kept
    number = CARD_STATE_LAYOUTS[layout]
    checkpoint.write(f"card-state/{number}", str(number).encode())
    return layout


def check_spread(checkpoint: Location, partitions: int) -> int:
    """The partitions a checkpoint's bucket keys are spread over (``scoring.buckets``).

    A new checkpoint (no Spark offsets yet) takes ``partitions``, the stateful stages'
    partitions it is about to be created with, and records it as
    ``<checkpoint>/bucket-spread/<partitions>``; a started one keeps its record, and one
    started before spread keys existed keeps its bucket indexes as keys (a spread of 1).
    The keys name the buckets' state, so they never change under a checkpoint.
    """
    names = [n.rsplit("/", 1)[-1] for n in checkpoint.list("bucket-spread")]
    recorded = [int(n) for n in names if n.isdigit()]
    if checkpoint.list("spark/offsets"):
        return recorded[0] if recorded else 1
    if recorded != [partitions]:
        for n in names:
            checkpoint.delete(f"bucket-spread/{n}")
        checkpoint.write(f"bucket-spread/{partitions}", str(partitions).encode())
    return partitions


def check_topics(settings: Settings, names: list[str]) -> None:
    """Fail before starting Spark when a topic is missing, naming it and the fix."""
    from fraudstream.adapters.kafka import admin_client

    existing = admin_client(settings.kafka).list_topics(timeout=15).topics
    missing = [n for n in names if n not in existing]
    if missing:
        raise MissingTopicError(
            f"topic(s) {', '.join(missing)} do not exist on {settings.kafka.bootstrap}: "
            "create the platform's topics with `fraudstream topics ensure` (or pass existing "
            "ones with --source/--predictions/--alerts/--dead-letters)"
        )


@dataclass
class RetryingBatches:
    """foreachBatch: the batch handler, run again in place while a dependency is unreachable.

    A stage that reads a dependency without its own retry (a Python worker loading the
    model from the registry) fails its Spark job; the batch is then run again from its
    start, the stateful stages included (Spark recomputes them from the state of the
    batch before), after a backoff,
    until it succeeds or ``policy.budget_s`` passes. Every effect of a batch is
    idempotent by key or by batch id, so a batch run twice leaves what one run leaves.
    An error that is not transient, or an ``OutageError`` (a sink already spent its
    budget), fails the batch at once.
    """

    handler: BatchHandler
    policy: RetryPolicy
    metrics: ScorerMetrics

    def __call__(self, frame: Any, batch_id: int) -> None:
        def count(exc: BaseException) -> None:
            if transient(exc):
                self.metrics.retries.inc()

        retry(
            lambda: self.handler(frame, batch_id),
            self.policy,
            f"micro-batch {batch_id}",
            on_failure=count,
        )


class ScorerGaveUpError(RuntimeError):
    """The streaming query failed more times in a row than the scorer restarts it."""


@dataclass
class QuerySupervisor:
    """Runs the streaming query, and starts it again from its checkpoint when it fails.

    ``start`` starts a query, ``watch`` returns when it stops or fails (or ``stop`` is
    set). A failure, or a start that fails (its checkpoint unreadable yet), is logged and
    counted (``fraudstream_scorer_restarts_total``), then the query starts again after
    ``restart_wait_s``; ``ScorerGaveUpError`` ends the run when the error is one no wait
    can fix, or after ``max_restarts`` failures in a row (a query that finished a batch
    since its start resets the count).
    """

    start: Callable[[], Any]
    watch: Callable[[Any], None]
    finished_batches: Callable[[], int]
    scorer: ScorerSettings
    metrics: ScorerMetrics
    stop: threading.Event
    query: Any = None
    restarts: int = 0
    """Restarts in this run, in a row or not."""

    def run(self) -> None:
        in_a_row = 0
        while True:
            before = self.finished_batches()
            try:
                self.query = self.start()
            except Exception as exc:  # a restart that cannot read its checkpoint yet
                self.query, text = None, f"{type(exc).__name__}: {exc}"
            else:
                self.watch(self.query)
                error = self.query.exception()
                if error is None:
                    return
                text = str(error)
            if self.stop.is_set():
                return
            in_a_row = 1 if self.finished_batches() > before else in_a_row + 1
            if not restartable(text):
                raise ScorerGaveUpError(f"the scoring query failed (not transient): {text}")
            limit = self.scorer.max_restarts
            if in_a_row > limit:
                raise ScorerGaveUpError(
                    f"the scoring query failed {in_a_row} times in a row (at most {limit} "
                    f"restarts, FRAUDSTREAM_SCORER_MAX_RESTARTS): {text}"
                )
            wait = restart_wait_s(in_a_row, self.scorer.restart_backoff_max_s)
            log.error(
                "the scoring query failed; restarting it from its checkpoint in %.1f s "
                "(restart %d in a row, at most %d): %s",
                wait, in_a_row, limit, text.splitlines()[0][:500] if text else "",
            )  # fmt: skip
            self.metrics.restarts.inc()
            self.restarts += 1
            if self.stop.wait(wait):
                return
            log.info("restarting the scoring query (restart %d in a row)", in_a_row)


def restart_wait_s(restart: int, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before restart number ``restart`` (1 first): 1, 2, 4... up to ``max_s``,
    the upper half drawn at random so that scorers restarting together spread out."""
    bound = min(max_s, 2.0 ** (restart - 1))
    return bound * (0.5 + 0.5 * rand())


def restartable(error: str) -> bool:
    """Whether a failed query is worth starting again from its checkpoint: yes unless its
    error says no wait can fix it (credentials, schema, a refused model)."""
    return transient(RuntimeError(error)) or not any(
        marker in error.lower()
        for marker in (
            "password authentication failed",
            "authentication failed",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "accessdenied",
            "undefinedcolumn",
            "undefinedtable",
            "incompatiblemodelerror",
            "no model at @",
        )
    )


@dataclass
class RunResult:
    report: BatchReport
    seconds: float
    model_versions: list[str]
    reloads: dict[str, int]
    checkpoint: str
    restarts: int = 0
    """Times the query failed and was started again from its checkpoint."""


def run_scorer(
    settings: Settings,
    scorer: ScorerSettings,
    spark_settings: SparkSettings,
    options: StreamOptions,
    topics: OutputTopics,
    duration_s: float | None = None,
    serve_metrics: bool = True,
    on_batch: Any = None,
) -> RunResult:
    """Run the scorer until ``duration_s`` (None: until stopped or failed); returns its report."""
    check_topics(
        settings,
        [
            options.source_topic,
            scorer.labels_topic,
            topics.predictions,
            topics.alerts,
            topics.dead_letters,
        ],
    )
    fail_fast_http()  # the scorer's own retries bound the registry's outages (see above)
    policy = RetryPolicy(budget_s=scorer.retry_budget_s)
    retry(
        lambda: ensure_ahead(
            settings.postgres, datetime.now(UTC).date(), settings.retention.partitions_ahead_days
        ),
        policy,
        f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}",
    )  # the coming days' partitions, so the sinks seldom make one while writing
    champion = registry_holder(
        settings, settings.mlflow.model_alias, scorer.reload_interval_s, scorer.retry_budget_s
    )
    champion.refresh(force=True)
    if champion.current is None:
        raise NoModelError(
            f"no usable model at @{settings.mlflow.model_alias} of "
            f"{settings.mlflow.model_name!r}: train one with `fraudstream train` and promote "
            "it with `fraudstream promote`"
        )
    shadow = (
        registry_holder(settings, "challenger", scorer.reload_interval_s, scorer.retry_budget_s)
        if scorer.shadow
        else None
    )
    checkpoint = Location(options.checkpoint, settings.s3)
    layout = check_buckets(checkpoint, options.buckets, options.card_state)
    spread = check_spread(checkpoint, spark_settings.shuffle_partitions)
    metrics = ScorerMetrics()
    if serve_metrics:
        metrics.serve(scorer.metrics_port)
    local = settings.platform.mode != "kubernetes"  # the image holds the jars there
    jars = spark_jars(settings.platform.cache_dir) if local else []
    spark = build_session(settings, spark_settings, "fraudstream-scorer", jars)
    for key, value in checkpoint_conf(options.checkpoint).items():
        spark.conf.set(key, value)
    options = replace(
        options,
        card_state=layout,
        bucket_spread=spread,
        score_partitions=spark.sparkContext.defaultParallelism,
        labels_topic=scorer.labels_topic,
        merchant_delay_s=scorer.merchant_delay_s,
        merchant_release_s=scorer.merchant_release_s,
        label_links=scorer.label_links,
    )
    handler = BatchHandler(
        settings=settings,
        options=options,
        champion=champion,
        shadow=shadow,
        sinks=scorer_sinks(settings, options, topics, policy),
        metrics=metrics,
        rules=rule_set_holder(settings.postgres, scorer.reload_interval_s),
    )
    metrics.reloads.labels("loaded").inc(champion.counts.loaded)
    handler.refresh_models()
    batches = RetryingBatches(handler, policy, metrics)

    def start() -> Any:
        return (
            stage_frame(spark, settings, options, handler.counts(spark))
            .writeStream.queryName("fraudstream-scorer")
            .option("checkpointLocation", f"{options.checkpoint.rstrip('/')}/spark")
            .trigger(processingTime=f"{options.trigger_s} seconds")
            .foreachBatch(batches)
            .start()
        )

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    supervisor = QuerySupervisor(
        start=start,
        watch=lambda q: _watch(q, handler, metrics, stop, started, duration_s, on_batch),
        finished_batches=lambda: handler.report.batches,
        scorer=scorer,
        metrics=metrics,
        stop=stop,
    )
    try:
        supervisor.run()
    except KeyboardInterrupt:
        log.info("stopping on Ctrl-C")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if supervisor.query is not None:
            supervisor.query.stop()
        for sink in handler.sinks:
            sink.close()
        spark.stop()
    return RunResult(
        report=handler.report,
        seconds=time.monotonic() - started,
        model_versions=sorted(handler.report.versions),
        reloads={
            "loaded": champion.counts.loaded,
            "refused": champion.counts.refused,
            "failed": champion.counts.failed,
        },
        checkpoint=options.checkpoint,
        restarts=supervisor.restarts,
    )


def _watch(
    query: Any,
    handler: BatchHandler,
    metrics: ScorerMetrics,
    stop: threading.Event,
    started: float,
    duration_s: float | None,
    on_batch: Any,
) -> None:
    """Between batches: poll the aliases, feed the metrics, until stopped or failed.

    Spark's progress is read once the handler finished a batch, until that batch's report
    is there, and otherwise every ``PROGRESS_IDLE_S`` (a trigger that runs no batch leaves
    a report too): each read costs the driver calls into the JVM and the parsing of a
    report (a fifth of the driver's CPU in a profile when it was read twice a second)."""
    progress = ProgressFeed(query)
    seen, read_at = 0, 0.0
    while not stop.is_set() and query.isActive:
        if duration_s is not None and time.monotonic() - started >= duration_s:
            stop.set()
            break
        handler.refresh_models()
        finished = handler.finished
        if finished != seen or time.monotonic() - read_at >= PROGRESS_IDLE_S:
            read_at = time.monotonic()
            reports = progress.drain()
            if reports:
                seen = finished
            for report in reports:
                metrics.observe_progress(report)
                if on_batch is not None:
                    on_batch(report, handler.report)
        stop.wait(0.5)


def scorer_sinks(
    settings: Settings,
    options: StreamOptions,
    topics: OutputTopics,
    retry: RetryPolicy | None = None,
) -> list[Sink]:
    """The scorer's outputs, in the order each micro-batch writes them: the online store
    last, so the API never reads a state whose transaction has no stored score. Each
    waits out an unreachable dependency under ``retry``."""
    sinks: list[Sink] = [
        KafkaSink(settings.kafka, topics, retry),
        PostgresSink(settings.postgres, settings.mlflow.model_name, options.source_topic, retry),
    ]
    if options.parquet_uri:
        sinks.append(ParquetSink(options.parquet_uri, retry))
    if options.emit_states:
        sinks.append(OnlineStoreSink(settings.redis, retry))
    return sinks


class ProgressFeed:
    """Each finished micro-batch's progress, read from the query between batches.

    Reads ``lastProgress`` (two py4j calls and the JSON Spark already keeps) and, only
    when more than one batch finished since the last read, ``recentProgress`` for the
    ones in between. A Python ``StreamingQueryListener`` was measured costing far more:
    Spark calls it through py4j, and PySpark rebuilds each event with dozens of calls
    back into the JVM, some of which look up class names through every jar on the
    class path (0.11 of the JVM's cores at 1,000 tx/s, plus the driver's GIL;
    docs/scorer.md).
    """

    def __init__(self, query: Any) -> None:
        self._query = query
        self._seen: tuple[int, str] | None = None

    def drain(self) -> list[dict[str, Any]]:
        """The progress reports finished since the last call, oldest first (each once)."""
        last = self._query.lastProgress
        if last is None:
            return []
        report = json.loads(last.json)
        key = (int(report["batchId"]), str(report["timestamp"]))
        if key == self._seen:
            return []
        reports = [report]
        if self._seen is not None and key[0] > self._seen[0] + 1:
            missed = [json.loads(p.json) for p in self._query.recentProgress]
            reports = [
                r for r in missed if (int(r["batchId"]), str(r["timestamp"])) > self._seen
            ] or reports
        self._seen = key
        return reports


def progress_line(progress: dict[str, Any]) -> str:
    """One readable line from a StreamingQueryProgress."""
    return json.dumps(
        {
            "batch": progress.get("batchId"),
            "rows": progress.get("numInputRows"),
            "in/s": round(float(progress.get("inputRowsPerSecond") or 0), 1),
            "out/s": round(float(progress.get("processedRowsPerSecond") or 0), 1),
            "ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        }
    )
