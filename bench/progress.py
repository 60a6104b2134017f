"""What it costs the scorer's driver to read one micro-batch's progress, two ways.

Prints figures and their ratio, asserts nothing. Needs Spark and the scorer's jars (the
cache `make setup` fills), not the platform: the query reads Spark's ``rate`` source and
writes to the memory sink, with a stateful aggregation so its progress carries a state
operator as the scorer's does, and a checkpoint in a temporary directory.

Once the query has run a few batches and stopped, each way is timed on the same last
progress report, alternating, --repeat times per round, in two rounds:

- ``listener``: what a Python ``StreamingQueryListener`` costs per report. Spark hands
  the listener the JVM's event, and PySpark builds its ``QueryProgressEvent`` with
  ``StreamingQueryProgress.fromJObject``, dozens of py4j calls into the JVM; the scorer
  then took its JSON.
- ``poll``: what ``scoring.run.ProgressFeed`` does: ``query.lastProgress``, which takes
  the report's JSON in one py4j call and parses it in Python.

For each: wall time, the Python process's CPU and the Spark JVM's CPU per report (ms,
from ``time.process_time`` and /proc), and the ratio of the listener's to the poll's.

Usage: python bench/progress.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)
from pyspark.sql.streaming.listener import StreamingQueryProgress

from fraudstream.adapters.spark import build_session
from fraudstream.platform.spark_jars import spark_jars
from fraudstream.settings import SparkSettings, load_settings


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_report(read: Callable[[], Any], jvm_pid: int, repeat: int) -> dict[str, float]:
    for _ in range(min(20, repeat)):  # warm both sides' caches and the JIT
        read()
    wall, python, jvm = time.perf_counter(), time.process_time(), _cpu_seconds(jvm_pid)
    for _ in range(repeat):
        read()
    return {
        "wall_ms": 1000 * (time.perf_counter() - wall) / repeat,
        "python_cpu_ms": 1000 * (time.process_time() - python) / repeat,
        "jvm_cpu_ms": 1000 * (_cpu_seconds(jvm_pid) - jvm) / repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}}))

    spark = build_session(
        load_settings(),
        SparkSettings(),
        "fraudstream-bench-progress",
        spark_jars(load_settings().platform.cache_dir),
    )
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as checkpoint:
        query = (
            spark.readStream.format("rate")
            .option("rowsPerSecond", 100)
            .load()
            .groupBy((F.col("value") % 10).alias("key"))
            .count()
            .writeStream.format("memory")
            .queryName("bench_progress")
            .outputMode("update")
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="1 second")
            .start()
        )
        while query.lastProgress is None or query.lastProgress.batchId < 3:
            time.sleep(0.5)
        spark.sparkContext.setLogLevel("FATAL")  # stopping aborts the batch under way
        query.stop()
        report = query._jsq.lastProgress()  # the JVM's own object, as a listener receives it
        ways: dict[str, Callable[[], Any]] = {
            "listener": lambda: StreamingQueryProgress.fromJObject(report).json,
            "poll": lambda: json.loads(query.lastProgress.json),  # type: ignore[union-attr]
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
        for _ in range(2):
            for name, read in ways.items():
                rounds[name].append(_per_report(read, jvm_pid, args.repeat))
    spark.stop()

    medians = {
        name: {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        for name, runs in rounds.items()
    }
    listener, poll = medians["listener"], medians["poll"]
    print(
        json.dumps(
            {
                "progress_per_report": medians,
                "listener_over_poll": {
                    k: round(listener[k] / poll[k], 1) if poll[k] else None for k in listener
                },
                "repeat": args.repeat,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
