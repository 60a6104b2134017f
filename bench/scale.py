"""Does the scorer scale out? The same pre-filled topic scored with 1 and with 2 executor cores.

Prints figures and ratios, asserts nothing. Needs a running platform
(`fraudstream platform up`, or the FRAUDSTREAM_* settings of another).

A scratch topic is filled with --rows live transactions before any scorer starts, so
no producer competes for the cores. Then `fraudstream score` reads it from the start,
--max-offsets-per-trigger records per micro-batch, once in ``local[1]`` and once in
``local[2]`` (each with a new checkpoint, the run's rows deleted from Postgres in
between). For each run, over the window from the end of its first micro-batch (Spark
and the model warmed up) to the last record handled (counted in the output topics, so
the scorer is not asked for anything while it runs):

- ``rows_per_s``: records handled (scored or dead-lettered) in the window per second;
- ``driver_us_per_row``: CPU of the scorer's Python driver process per row;
- ``executor_cpu_s_per_1000``: CPU of the Spark JVM and its Python workers per 1,000
  rows (in local mode the JVM also runs Spark's own driver side: scheduling, the
  offset and commit logs), split as ``jvm`` and ``python_workers``;
- ``other_cpu_s_per_1000``: CPU of every other process per 1,000 rows (the platform's
  services: Kafka's brokers, PostgreSQL, MinIO); ``cores_busy``: all of it per second.

Then ``scale_ratio`` = rows_per_s(2) / rows_per_s(1) and, labelled as a projection,
the capacity with 1, 2, 4, 8 and 16 executor cores from Amdahl's law with the serial
and parallel time per row the two runs imply (t1 = s + p, t2 = s + p/2). The cores
the platform's services use on the same machine are in the measured figures and not
in the projection, which assumes cores added as executors elsewhere. A second projection,
``projection_cpu``, takes the driver's CPU per row as serial and the executors' CPU per
row as parallel: CPU per row shows what more cores would take even where the machine's
few cores, shared with the services, bound the wall time.

Each scorer's process tree (its driver, the Spark JVM, the Python workers) may use only
as many CPUs as it has executor cores, the last ones this process may use: the local
analogue of an executor pod with a CPU limit. Unpinned (``--no-pin``), ``local[1]`` runs
one Spark task at a time, but the JVM's other threads and that task's Python worker run
beside it on every CPU there is, so on a 2-CPU machine "1 core" already uses both and the
ratio cannot show what a second core adds. The platform's services stay unpinned: beside
a 1-core scorer they have the other CPU to themselves, beside a 2-core one they share, so
the ratio errs low (``other_cpu_s_per_1000`` and ``cores_busy`` show by how much).

With ``--baseline OTHER/src`` the same topic is also scored by another checkout's code
(the code before a change), each configuration by both in turn (the order flips between
configurations and repeats, A B B A), and the last line adds
``vs_baseline``: the baseline's figures and this code's as ratios of them. With
``--repeat N`` each configuration runs N times and every figure is the median.

The last line is one JSON object: ``driver_us_per_row`` (of the 2-core run),
``rows_per_s_1``, ``rows_per_s_2``, ``scale_ratio``, ``cpu_efficiency_2`` and the
projections. ``cpu_efficiency_2`` is the rows per busy CPU second of the whole machine with
2 cores over that with 1 (1.0: a row costs the machine the same CPU either way), so
``scale_ratio`` = ``cpu_efficiency_2`` x the ratio of ``cores_busy``: what the scorer does with
a second core, apart from how much of it the services leave.

Usage: python bench/scale.py [--rows 40000] [--max-offsets 4000] [--pythonpath OTHER/src]
       [--baseline OTHER/src] [--repeat 1] [--no-pin]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # the helpers of bench/stream.py

from fraudstream.adapters.kafka import admin_client, create_scratch_topic, delete_topic, records_in
from fraudstream.platform.process import running_processes
from fraudstream.settings import Settings, load_settings
from stream import CLI, _delete_rows, _live_values, _model, _produce

POLL_S = 0.25
"""How often the output topics' end offsets are read (from the partition leaders: the
scorer does no work for it, so its driver's figure is its own)."""


def _handled(settings: Settings, topics: dict[str, str], admin: Any) -> int:
    """Records the scorer has handled: one record per score on the predictions topic,
    one per dead letter (the live pool holds a few invalid records). Counted in Kafka,
    not from the scorer's metrics: scraping them twice a second (Prometheus scrapes every
    15-30 s) was most of its driver's CPU in this benchmark."""
    ends = records_in(settings.kafka, [topics["p"], topics["d"]], admin)
    return sum(ends.values())


def _cpu(root: int) -> dict[str, float]:
    """CPU seconds so far of the scorer's driver process, its JVM and the JVM's Python
    workers (the process tree under ``root``, from /proc), and of every other process,
    each under ``other:<pid>`` (the platform's services, this benchmark), so that one
    which started in the window counts only from its start."""
    processes = running_processes()
    children: dict[int, list[Any]] = {}
    for p in processes:
        children.setdefault(p.ppid, []).append(p)
    out = {"driver": 0.0, "jvm": 0.0, "python_workers": 0.0}
    tree, todo = {root}, list(children.get(root, []))
    while todo:
        p = todo.pop()
        tree.add(p.pid)
        out["jvm" if "java" in p.cmdline.split(" ")[0] else "python_workers"] += p.cpu_seconds
        todo.extend(children.get(p.pid, []))
    for p in processes:
        if p.pid == root:
            out["driver"] = p.cpu_seconds
        elif p.pid not in tree:
            out[f"other:{p.pid}"] = p.cpu_seconds
    return out


def run_once(
    settings: Settings,
    topics: dict[str, str],
    rows: int,
    cores: int,
    args: Any,
    pythonpath: str = "",
) -> dict[str, Any]:
    """One scorer over the whole topic in ``local[cores]`` (from ``pythonpath``'s code when
    given); its figures over the window."""
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/bench/{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "FRAUDSTREAM_SPARK_MASTER": f"local[{cores}]",
        "FRAUDSTREAM_SPARK_SHUFFLE_PARTITIONS": str(args.shuffle_partitions),
        "FRAUDSTREAM_SCORER_LABELS_TOPIC": topics["l"],  # empty: the merchant stage reads it
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
        # The other checkout's package would look for this platform's state in its own tree.
        env["FRAUDSTREAM_HOME"] = str(settings.platform.home)
    admin = admin_client(settings.kafka)
    before = _handled(settings, topics, admin)  # the output topics keep earlier runs' records
    suffix = f"local{cores}" + ("-other" if pythonpath else "")
    log = Path(f"{args.log}.{suffix}").open("w")  # noqa: SIM115 (closed below)
    cpus = pinned_cpus(cores) if args.pin else None
    scorer = subprocess.Popen(
        [CLI, "score", "--source", topics["in"], "--predictions", topics["p"], "--alerts",
         topics["a"], "--dead-letters", topics["d"], "--checkpoint", checkpoint,
         "--starting-offsets", "earliest", "--trigger", str(args.trigger), "--no-parquet",
         "--no-progress", "--buckets", str(args.buckets),
         "--max-offsets-per-trigger", str(args.max_offsets)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        # The JVM and its Python workers are the scorer's children: they inherit its CPUs.
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    try:
        start: tuple[float, float, dict[str, float]] | None = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and scorer.poll() is None:
            scored = _handled(settings, topics, admin) - before
            if start is None and scored >= min(args.max_offsets, rows):  # the first batch
                start = (time.monotonic(), scored, _cpu(scorer.pid))
            if scored >= rows:
                break
            time.sleep(POLL_S)
        ended, cpu = time.monotonic(), _cpu(scorer.pid)
        final = _handled(settings, topics, admin) - before
    finally:
        scorer.terminate()
        scorer.wait(120)
        log.close()
    if start is None or final < rows:
        return {"cores": cores, "error": f"handled {final:.0f} of {rows}", "log": log.name}
    began, scored_then, cpu_then = start
    counted = final - scored_then
    used = {k: cpu[k] - cpu_then.get(k, 0.0) for k in cpu if not k.startswith("other:")}
    used["other"] = sum(v - cpu_then.get(k, 0.0) for k, v in cpu.items() if k.startswith("other:"))
    return {
        "cores": cores,
        "cpus": sorted(cpus) if cpus else None,
        "rows_in_window": int(counted),
        "seconds": round(ended - began, 2),
        "rows_per_s": round(counted / (ended - began), 1),
        "driver_us_per_row": round(used["driver"] / counted * 1e6, 2),
        "executor_cpu_s_per_1000": round((used["jvm"] + used["python_workers"]) / counted * 1e3, 3),
        "jvm_cpu_s_per_1000": round(used["jvm"] / counted * 1e3, 3),
        "python_workers_cpu_s_per_1000": round(used["python_workers"] / counted * 1e3, 3),
        "other_cpu_s_per_1000": round(used["other"] / counted * 1e3, 3),
        "cores_busy": round(sum(used.values()) / (ended - began), 2),
        "load_avg_1m": os.getloadavg()[0],
    }


def pinned_cpus(cores: int) -> frozenset[int]:
    """The last ``cores`` CPUs this process may use (a scorer pinned to them)."""
    allowed = sorted(os.sched_getaffinity(0))
    if cores > len(allowed):
        raise SystemExit(
            f"pinning {cores} executor cores needs {cores} CPUs; this process may use "
            f"{len(allowed)} ({allowed}). Run with --no-pin, or on a larger machine."
        )
    return frozenset(allowed[-cores:])


def versus(code: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The baseline's figures and this code's as ratios of them (rows/s: higher is better;
    CPU: lower is better)."""
    out: dict[str, Any] = {}
    for cores in (1, 2):
        for key in ("rows_per_s", "driver_us_per_row", "executor_cpu_s_per_1000"):
            out[f"baseline_{key}_{cores}"] = baseline[cores][key]
            out[f"ratio_{key}_{cores}"] = round(code[cores][key] / baseline[cores][key], 3)
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over repeated runs (the first error, if any run failed)."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    return {
        k: (round(statistics.median(r[k] for r in runs), 3) if isinstance(v, float | int) else v)
        for k, v in runs[0].items()
    }


def projection(rows_per_s_1: float, rows_per_s_2: float) -> dict[str, Any]:
    """Amdahl's law from two runs: t1 = s + p, t2 = s + p/2 (seconds per row)."""
    t1, t2 = 1 / rows_per_s_1, 1 / rows_per_s_2
    parallel = max(0.0, 2 * (t1 - t2))
    serial = max(0.0, t1 - parallel)
    return {
        "serial_us_per_row": round(serial * 1e6, 2),
        "parallel_us_per_row": round(parallel * 1e6, 2),
        "rows_per_s": {
            str(n): round(1 / (serial + parallel / n), 1) if serial + parallel > 0 else None
            for n in (1, 2, 4, 8, 16)
        },
    }


def cpu_projection(driver_us_per_row: float, executor_cpu_s_per_1000: float) -> dict[str, Any]:
    """Capacity by executor cores from CPU costs, not wall time: the driver's CPU per row
    is serial, the executors' (JVM and Python workers) divides over the cores. On a
    machine whose cores the platform's services share, wall time cannot show scaling
    (``projection`` above then finds almost everything serial); CPU per row can, if it
    stays the same with more cores. Spark's own driver side runs in the JVM in local mode
    and is counted as parallel here, so this is an upper bound."""
    serial = driver_us_per_row
    parallel = executor_cpu_s_per_1000 * 1e3  # us per row
    return {
        "serial_us_per_row": round(serial, 2),
        "parallel_us_per_row": round(parallel, 1),
        "rows_per_s": {str(n): round(1e6 / (serial + parallel / n), 1) for n in (1, 2, 4, 8, 16)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--max-offsets", type=int, default=4_000, help="Records per batch.")
    parser.add_argument("--trigger", type=float, default=0.5)
    parser.add_argument("--buckets", type=int, default=4, help="Card buckets.")
    parser.add_argument(
        "--shuffle-partitions", type=int, default=2,
        help="Partitions of the card stage (each run has a new checkpoint, so it takes it).",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1200, help="Seconds per run at most.")
    parser.add_argument(
        "--pythonpath", default="",
        help="Run the scorer from another checkout's src (e.g. the code before a change).",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", default="",
        help="Another checkout's src run beside this code, in the same run (each "
        "configuration alternately), for ratios against it.",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="Runs per configuration (medians).")
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True,
        help="Pin each scorer (driver, JVM, Python workers) to as many CPUs as executor "
        "cores (default); --no-pin lets it use every CPU.",
    )  # fmt: skip
    parser.add_argument("--log", default="bench-scale-scorer.log", help="The scorers' output.")
    args = parser.parse_args()
    if args.pin:
        pinned_cpus(2)  # before the topic is filled: a 1-CPU machine is told at once
    name = f"fraud-detector-bench-{uuid.uuid4().hex[:6]}"
    os.environ["FRAUDSTREAM_MLFLOW_MODEL_NAME"] = name  # read by the settings and the scorer
    settings = load_settings()
    _model(settings, name)
    topics = {
        k: create_scratch_topic(settings.kafka, f"scale-{k}") for k in ("in", "l", "p", "a", "d")
    }
    codes = {"code": args.pythonpath, **({"baseline": args.baseline} if args.baseline else {})}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {c: {1: [], 2: []} for c in codes}
    try:
        _produce(settings, topics["in"], args.rows, 1.0, _live_values(20_000), 20)
        for repeat in range(args.repeat):
            for cores in (1, 2):
                # Each configuration's runs in turn, in the other order on every other
                # repeat: a run right after the topic was filled or the tables emptied
                # meets more background work than the run after it.
                order = list(codes.items())
                for code, path in order if (repeat + cores) % 2 else order[::-1]:
                    figures = run_once(settings, topics, args.rows, cores, args, path)
                    print(json.dumps({"run": {"code": code, **figures}}), flush=True)
                    runs[code][cores].append(figures)
                    _delete_rows(settings, topics["in"])
    finally:
        for topic in topics.values():
            delete_topic(settings.kafka, topic)
        _delete_rows(settings, topics["in"])
    medians = {c: {n: median_run(r) for n, r in by.items()} for c, by in runs.items()}
    if any("error" in m for by in medians.values() for m in by.values()):
        errors = [m.get("error") for by in medians.values() for m in by.values()]
        print(json.dumps({"error": errors}), flush=True)
        return
    one, two = medians["code"][1], medians["code"][2]
    ratio = two["rows_per_s"] / one["rows_per_s"]
    projected = projection(one["rows_per_s"], two["rows_per_s"])
    by_cpu = cpu_projection(two["driver_us_per_row"], two["executor_cpu_s_per_1000"])
    for label, p in (
        ("Amdahl's law from the two runs", projected),
        ("CPU per row; an upper bound", by_cpu),
    ):
        print(
            f"projection ({label}; not a measurement): serial {p['serial_us_per_row']} us/row, "
            f"parallel {p['parallel_us_per_row']} us/row; rows/s by executor cores "
            f"{p['rows_per_s']}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "driver_us_per_row": two["driver_us_per_row"],
                "driver_us_per_row_1": one["driver_us_per_row"],
                "rows_per_s_1": one["rows_per_s"],
                "rows_per_s_2": two["rows_per_s"],
                "scale_ratio": round(ratio, 3),
                "cpu_efficiency_2": round(
                    (two["rows_per_s"] / two["cores_busy"])
                    / (one["rows_per_s"] / one["cores_busy"]),
                    3,
                ),
                "executor_cpu_s_per_1000_1": one["executor_cpu_s_per_1000"],
                "executor_cpu_s_per_1000_2": two["executor_cpu_s_per_1000"],
                "projection": projected,
                "projection_cpu": by_cpu,
                "repeat": args.repeat,
                "pinned": args.pin,
                **(
                    {"vs_baseline": versus(medians["code"], medians["baseline"])}
                    if args.baseline
                    else {}
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
