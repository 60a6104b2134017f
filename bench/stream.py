"""Streaming scorer: open-loop latency and capacity; the scoring stage against a row-at-a-time UDF.

Prints figures and ratios, asserts nothing. Needs a running platform
(`fraudstream platform up`, or the FRAUDSTREAM_* settings of another).

1. Scoring stage (same rows, one thread): the scorer's vectorised stage (one
   ``predict_proba`` and one SHAP ``pred_contribs`` call per batch) against the
   baseline comparable projects write: a row-at-a-time Python UDF that builds a
   one-row DataFrame and calls ``predict_proba`` (its body, timed in Python).
   Median of --repeat runs each, and the ratio; plus the stage inside Spark.
2. End to end, open loop: a producer sends live transactions (generated, stamped
   with the current time) at each fixed --rates for --seconds, never waiting for
   results, into a scratch topic read by a `fraudstream score` process. Latency is
   the prediction record's Kafka timestamp minus the transaction's CreateTime
   (``ingest_time``), over the rows sent after --warmup seconds. A rate is kept up
   with when every sent row was scored within 10 s of the end of sending (bounded
   lag). The producer batches for --linger-ms (default 20, as fraudstream's own live
   producer); the latency includes that wait, since CreateTime is set on send. Also,
   over the same window (after --warmup, until sending ends): the mean micro-batch
   duration by driver stage and by Spark phase, from the scorer's metrics, and the
   cores each part of the platform used (``cores``, from /proc on Linux), and the
   Spark JVM's and the brokers' cores split by thread kind (``jvm_cores_by_thread``:
   ``jit`` for the compiler threads, ``gc`` for the collector's, ``other``). The JVM
   compiles hot code for minutes after a start (on a slow machine the compiler still
   took 0.2-0.6 cores three minutes in): the ``jit`` figure says how much of that is
   inside the window, and a longer --warmup moves it out. The scratch topics, and the
   run's rows in the scorer's Postgres tables, are deleted at the end: leftover
   partitions slow the brokers and leftover rows the upserts of later runs.

Usage: python bench/stream.py [--rates 200,500,1000] [--seconds 60] [--warmup 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg2
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families
from xgboost import XGBClassifier

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import (
    consumer_config,
    create_scratch_topic,
    delete_topic,
    producer_config,
)
from fraudstream.adapters.postgres import connect
from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.experiment import Experiment
from fraudstream.model.split import TimeSplit
from fraudstream.platform.process import (
    jvm_thread_kind,
    running_processes,
    thread_cpu_seconds,
)
from fraudstream.schema.tables import wire_records
from fraudstream.services.models import register_experiment
from fraudstream.settings import ScorerSettings, Settings, SparkSettings, load_settings

CLI = str(Path(sys.executable).parent / "fraudstream")
START = datetime(2026, 3, 2, tzinfo=UTC)


def _model(settings: Settings, name: str) -> tuple[Any, pd.DataFrame]:
    """A small XGBoost on generated history, registered as @champion of ``name``."""
    data = generate(GeneratorConfig(seed=3, start=START, days=14, customers=400, merchants=300))
    txns, labels = data.transactions.to_pandas(), data.labels.to_pandas()
    features = attach_labels(build_features(txns, labels), labels)
    model = XGBClassifier(n_estimators=200, max_depth=6, n_jobs=1, random_state=0)
    model.fit(features[feature_names()].to_numpy(np.float64), features["is_fraud"].to_numpy())
    experiment = Experiment(
        model, "xgboost", 0.5, {"bench": True}, TimeSplit(pd.Timestamp(START), 10, 2, 2), {}, {}
    )
    _, version = register_experiment(settings, experiment, git_sha="bench")
    registry.set_champion(settings, version, "bench")
    return model, features


def _time(fn: Any, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def bench_scoring_stage(settings: Settings, model: Any, rows: pd.DataFrame, repeat: int) -> None:
    """Vectorised scoring against the row-at-a-time baseline, same rows, one thread.

    Both are timed as the Python code a Spark worker runs (the baseline's UDF body:
    a one-row DataFrame and ``predict_proba`` per row), which leaves out Spark's
    per-row UDF overhead and so flatters the baseline. The scorer's stage is also
    timed inside Spark (``mapInPandas``) to show the Arrow round trip costs little.
    """
    from pyspark.sql import functions as F  # noqa: N812

    from fraudstream.adapters.spark import build_session
    from fraudstream.features.catalogue import FEATURE_SET_VERSION
    from fraudstream.platform.spark_jars import spark_jars
    from fraudstream.scoring.model import ScoringModel, score

    names = feature_names()
    x = rows[names].to_numpy(np.float64)
    scoring = ScoringModel(model, "bench", 0.5, FEATURE_SET_VERSION)
    base_n = min(len(x), 1_000)

    def one_row_udf_body() -> None:
        for values in x[:base_n].tolist():
            float(model.predict_proba(pd.DataFrame([values], columns=names))[0, 1])

    t_vec = _time(lambda: score(scoring, x), repeat)
    t_vec_plain = _time(lambda: score(scoring, x, with_reasons=False), repeat)
    t_base = _time(one_row_udf_body, repeat)
    vec_rate, plain_rate, base_rate = len(x) / t_vec, len(x) / t_vec_plain, base_n / t_base

    spark = build_session(
        settings, SparkSettings(), "bench-scoring-stage", spark_jars(settings.platform.cache_dir)
    )
    frame = spark.createDataFrame(rows[names].astype("float64")).repartition(2).cache()
    n = frame.count()

    def vectorised(batches: Any) -> Any:
        for batch in batches:
            yield pd.DataFrame({"score": score(scoring, batch[names].to_numpy(np.float64)).score})

    t_spark = _time(
        lambda: frame.mapInPandas(vectorised, "score double").agg(F.sum("score")).collect(),
        repeat,
    )
    spark.stop()
    print(
        json.dumps(
            {
                "scoring_stage": {
                    "rows": len(x),
                    "vectorised_with_reasons_rows_per_s": round(vec_rate),
                    "vectorised_scores_only_rows_per_s": round(plain_rate),
                    "row_at_a_time_rows_per_s": round(base_rate),
                    "ratio_with_reasons": round(vec_rate / base_rate, 1),
                    "ratio_scores_only": round(plain_rate / base_rate, 1),
                    "spark_mapInPandas_2_workers_rows_per_s": round(n / t_spark),
                }
            }
        ),
        flush=True,
    )


def _live_values(count: int) -> list[tuple[bytes, dict[str, Any]]]:
    data = generate(GeneratorConfig(seed=9, start=START, days=30, customers=3000, merchants=300))
    out = []
    for _, key, value in wire_records(data.transactions, "transaction"):
        out.append((key, json.loads(value)))
        if len(out) >= count:
            break
    return out


def _produce(
    settings: Settings, topic: str, rate: float, seconds: float, pool: list[Any], linger_ms: int
) -> int:
    """Open loop: send at ``rate``/s for ``seconds``, each stamped with the current time.

    The load generator shares the cores with what it measures, so it is kept cheap: ids
    from a run prefix and a counter, one timestamp per pass (the records of one pass go
    out in the same couple of milliseconds), orjson."""
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": linger_ms}))
    prefix = f"b{uuid.uuid4().hex[:8]}"
    started, sent = time.monotonic(), 0
    total = int(rate * seconds)
    while sent < total:
        due = min(int((time.monotonic() - started) * rate), total)
        if sent < due:
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        while sent < due:
            key, record = pool[sent % len(pool)]
            record = {**record, "transaction_id": f"{prefix}{sent:09d}", "event_time": now}
            producer.produce(topic, orjson.dumps(record), key)
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(60)
    return sent


def _collect(
    settings: Settings, topic: str, stop: threading.Event, out: list[tuple[float, float]]
) -> None:
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    while not stop.is_set():
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                continue
            ingest = datetime.fromisoformat(orjson.loads(msg.value())["ingest_time"]).timestamp()
            out.append((ingest, msg.timestamp()[1] / 1000 - ingest))
    consumer.close()


def _metric_totals(port: int) -> dict[tuple[str, str, str], float]:
    """The scorer's histogram sums and counts by (family, label, "sum" | "count"), since it
    started; empty when its metrics endpoint does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return {}
    totals: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            label = next(iter(sample.labels.values()), "")
            for part in ("sum", "count"):
                if sample.name.endswith(f"_{part}"):
                    totals[(family.name, label, part)] = sample.value
    return totals


def _window_means(
    before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float]
) -> dict[str, Any]:
    """Mean ms per micro-batch by driver stage and by Spark phase, and the batch count, over the
    batches between two snapshots of the scorer's metrics (the measured window only: the
    scorer's start and the JVM's first compilations are left out)."""

    def delta(family: str, label: str, part: str) -> float:
        return after.get((family, label, part), 0.0) - before.get((family, label, part), 0.0)

    def means(name: str) -> dict[str, float]:
        labels = sorted({label for family, label, _ in after if family == name})
        return {
            label: round(1000 * delta(name, label, "sum") / delta(name, label, "count"), 1)
            for label in labels
            if delta(name, label, "count") > 0
        }

    batch_family = "fraudstream_scorer_batch_duration_seconds"
    return {
        "batch_ms_by_stage": means("fraudstream_scorer_stage_seconds"),
        "batch_ms_by_spark_phase": means("fraudstream_scorer_batch_phase_seconds"),
        "batches": {
            "count": delta(batch_family, "", "count"),
            "mean_ms": means(batch_family).get(""),
        },
    }


# Who a process is, by its command line: the platform's parts, the scorer and this benchmark.
_PROCESS_GROUPS = (
    ("kafka_brokers", "kafka.Kafka"),
    ("spark_jvm", "org.apache.spark.deploy.SparkSubmit"),
    ("spark_python_workers", "pyspark.daemon"),
    ("spark_python_workers", "pyspark.worker"),
    ("scorer_driver", "fraudstream score"),
    ("benchmark", "bench/stream.py"),
    ("postgres", "postgres"),
    ("minio", "minio"),
    ("mlflow", "mlflow"),
    ("redis", "redis-server"),
    ("airflow", "airflow"),
)


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """Each process's group and CPU seconds (user + system) used so far, from /proc (Linux);
    empty elsewhere."""
    out: dict[int, tuple[str, float]] = {}
    for process in running_processes():
        group = next((g for g, needle in _PROCESS_GROUPS if needle in process.cmdline), "other")
        out[process.pid] = (group, process.cpu_seconds)
    return out


def _cores(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float
) -> dict[str, float]:
    """Cores busy on average per process group between two CPU snapshots, busiest first: each
    process's own difference (one started in between counts whole; one that ended in between
    is missed)."""
    if not before or seconds <= 0:
        return {}
    used: dict[str, float] = {}
    for pid, (group, cpu) in after.items():
        used[group] = used.get(group, 0.0) + (cpu - before.get(pid, (group, 0.0))[1]) / seconds
    cores = {g: round(c, 2) for g, c in sorted(used.items(), key=lambda kv: -kv[1]) if c > 0.005}
    return {"total": round(sum(used.values()), 2), **cores}


_JVM_GROUPS = ("spark_jvm", "kafka_brokers")


def _jvm_thread_seconds(
    processes: dict[int, tuple[str, float]],
) -> dict[tuple[int, int], tuple[str, str, float]]:
    """(pid, thread id) -> (group, thread kind, CPU seconds) for the JVMs among ``processes``."""
    out: dict[tuple[int, int], tuple[str, str, float]] = {}
    for pid, (group, _) in processes.items():
        if group in _JVM_GROUPS:
            for tid, (name, seconds) in thread_cpu_seconds(pid).items():
                out[(pid, tid)] = (group, jvm_thread_kind(name), seconds)
    return out


def _jvm_cores(
    before: dict[tuple[int, int], tuple[str, str, float]],
    after: dict[tuple[int, int], tuple[str, str, float]],
    seconds: float,
) -> dict[str, dict[str, float]]:
    """Cores busy per JVM group and thread kind between two snapshots: how much of a JVM's
    share went to compiling (the JIT, heavy for minutes after a start) and collecting."""
    used: dict[str, dict[str, float]] = {}
    for key, (group, kind, cpu) in after.items():
        earlier = before.get(key, (group, kind, 0.0))[2]
        kinds = used.setdefault(group, {})
        kinds[kind] = kinds.get(kind, 0.0) + (cpu - earlier) / seconds
    return {g: {k: round(c, 3) for k, c in sorted(kinds.items())} for g, kinds in used.items()}


def bench_stream(settings: Settings, name: str, rates: list[float], args: Any) -> None:
    topics = {k: create_scratch_topic(settings.kafka, f"bench-{k}") for k in ("in", "p", "a", "d")}
    pool = _live_values(20_000)
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/bench/{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "FRAUDSTREAM_MLFLOW_MODEL_NAME": name}
    log = Path(args.log).open("w")  # noqa: SIM115 (the scorer's output, closed at the end)
    scorer = subprocess.Popen(
        [CLI, "score", "--source", topics["in"], "--predictions", topics["p"], "--alerts",
         topics["a"], "--dead-letters", topics["d"], "--checkpoint", checkpoint,
         "--starting-offsets", "latest", "--trigger", str(args.trigger), "--no-parquet",
         "--no-progress", "--card-state", args.card_state],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    port = ScorerSettings().metrics_port
    results: list[tuple[float, float]] = []
    stop = threading.Event()
    collector = threading.Thread(target=_collect, args=(settings, topics["p"], stop, results))
    collector.start()
    try:
        # Warm-up: the scorer's start-up (Spark, first checkpoint files) is not measured.
        warm = time.monotonic()
        while not results and time.monotonic() - warm < 600:
            _produce(settings, topics["in"], 20, 5, pool, args.linger_ms)
        _produce(settings, topics["in"], 20, args.warmup, pool, args.linger_ms)
        for rate in rates:
            results.clear()
            t0 = time.time()
            # The scorer's metrics and the CPU are read when the warm-up ends and when sending
            # ends, so the stage means and the cores cover the measured rows only.
            window: dict[str, Any] = {}

            def warm_snapshot(window: dict[str, Any] = window) -> None:
                processes = _cpu_seconds()
                threads = _jvm_thread_seconds(processes)
                window["start"] = (time.monotonic(), _metric_totals(port), processes, threads)

            timer = threading.Timer(args.warmup, warm_snapshot)
            timer.start()
            sent = _produce(settings, topics["in"], rate, args.seconds, pool, args.linger_ms)
            t_end = time.time()
            timer.join()
            ended, totals, cpu = time.monotonic(), _metric_totals(port), _cpu_seconds()
            threads = _jvm_thread_seconds(cpu)
            deadline = t_end + 10
            while time.time() < deadline and len(results) < sent:
                time.sleep(0.5)
            steady = [lat for ingest, lat in results if ingest >= t0 + args.warmup]
            kept_up = len(results) >= sent
            figures: dict[str, Any] = {
                "rate": rate,
                "card_state": args.card_state,
                "decoded_cards": ScorerSettings().decoded_cards,
                "sent": sent,
                "scored": len(results),
            }
            if steady:
                q = np.percentile(steady, [50, 90, 99, 100])
                figures.update(
                    {
                        f"{k}_ms": round(v * 1000)
                        for k, v in zip(("p50", "p90", "p99", "max"), q, strict=True)
                    }
                )
            figures["kept_up"] = kept_up
            if "start" in window:
                started, warm_totals, warm_cpu, warm_threads = window["start"]
                figures.update(_window_means(warm_totals, totals))
                figures["cores"] = _cores(warm_cpu, cpu, ended - started)
                figures["jvm_cores_by_thread"] = _jvm_cores(warm_threads, threads, ended - started)
            figures["load_avg_1m"] = os.getloadavg()[0]
            print(json.dumps({"stream": figures}), flush=True)
            if not kept_up:
                # Drain before the next rate would only measure the backlog: stop here.
                break
    finally:
        stop.set()
        collector.join()
        scorer.terminate()
        scorer.wait(120)
        log.close()
        for topic in topics.values():
            # Leftover topics slow every later run: each partition adds to every fetch.
            delete_topic(settings.kafka, topic)
        # So do leftover rows: each run adds its transactions to the scorer's tables.
        _delete_rows(settings, topics["in"])


def _delete_rows(settings: Settings, source_topic: str) -> None:
    """Delete the run's rows from the scorer's tables (found through transactions_raw)."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE bench_ids ON COMMIT DROP AS "
            "SELECT transaction_id FROM transactions_raw WHERE source_topic = %s",
            (source_topic,),
        )
        for table in ("fraud_alerts", "transactions_with_score", "transactions_raw"):
            cur.execute(
                f"DELETE FROM {table} t USING bench_ids b WHERE t.transaction_id = b.transaction_id"
            )
    # Vacuum now rather than let autovacuum do it during the next run it would slow.
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        conn.autocommit = True  # VACUUM runs outside a transaction (``connect`` opens one)
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) fraud_alerts, transactions_with_score, transactions_raw")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--trigger", type=float, default=0.5)
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=20,
        help="The producer's linger.ms: 20, as fraudstream's own live producer (the client "
        "default is 5). Every produce request costs the three local brokers CPU that the "
        "scorer shares, so this changes the figures (docs/scorer.md).",
    )
    parser.add_argument(
        "--card-state", default="packed", choices=["packed", "per-card"],
        help="The scorer's card-state layout.",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-stage", action="store_true", help="Skip the scoring-stage part.")
    parser.add_argument("--log", default="bench-stream-scorer.log", help="The scorer's output.")
    args = parser.parse_args()
    name = f"fraud-detector-bench-{uuid.uuid4().hex[:6]}"
    os.environ["FRAUDSTREAM_MLFLOW_MODEL_NAME"] = name  # read by the settings and the scorer
    settings = load_settings()
    model, features = _model(settings, name)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}}))
    if not args.skip_stage:
        bench_scoring_stage(settings, model, features, args.repeat)
    if not args.skip_stream:
        bench_stream(settings, name, [float(r) for r in args.rates.split(",")], args)


if __name__ == "__main__":
    main()
