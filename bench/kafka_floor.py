"""What the Kafka brokers cost with a producer alone: the share of the cores the scorer never gets.

Prints figures and ratios, asserts nothing. Needs a running platform (`fraudstream platform
up`); measures the brokers of its configured cluster that run on this machine.

For each rate in --rates a producer (the benchmark's and fraudstream's live producer
settings: idempotent, ``acks=all``, --linger-ms 20, 300-byte values, 3,000 keys) sends into
a scratch topic of 6 partitions, replication factor 3, for a --warmup and then --windows
windows of --seconds each; a rate of 0 measures the idle cluster. Per window: the three
brokers' cores from /proc, split by thread kind (``jit``, ``gc``, ``other``) and by the
busiest thread names. Two topic layouts alternate, one rate at a time:

- ``spread``: Kafka's own placement, partition leaders on every broker (what production
  does, each broker on its own machine);
- ``one-leader``: every partition led by the first broker, the followers on the other two.
  The same replication and the same guarantees (a leader's failure moves leadership to a
  follower in the ISR), but each linger interval costs one produce request and its
  followers' fetches instead of one per broker: on one machine the brokers share the
  same cores, so spreading the leaders buys nothing there.

Medians over the windows, and the ratio of the layouts. The point is the floor: with
--linger-ms fixed, the brokers' CPU follows the number of requests, not the records, so
it is reached at a modest rate and stays there.

Usage: python bench/kafka_floor.py [--rates 0,100,1000,5000] [--seconds 20] [--windows 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from fraudstream.adapters.kafka import admin_client, broker_ids, delete_topic, producer_config
from fraudstream.platform.process import jvm_thread_kind, running_processes, thread_cpu_seconds
from fraudstream.settings import Settings, load_settings

PARTITIONS = 6
VALUE = b"x" * 300
KEYS = [b"card-%05d" % i for i in range(3000)]


def broker_pids(settings: Settings) -> list[int]:
    """The brokers this platform started on this machine (their properties live in its home)."""
    home = str(settings.platform.home)
    return [p.pid for p in running_processes() if "kafka.Kafka" in p.cmdline and home in p.cmdline]


@contextmanager
def scratch_topic(settings: Settings, layout: str) -> Iterator[str]:
    name = f"floor-{layout}-{uuid.uuid4().hex[:8]}"
    if layout == "spread":
        topic = NewTopic(name, PARTITIONS, 3)
    else:
        first, *others = sorted(broker_ids(settings.kafka))
        if len(others) < 2:
            raise SystemExit("the one-leader layout needs three brokers")
        # Followers alternate, so each of the other brokers is first in line half the time.
        rows = [[first, *others], [first, *reversed(others)]]
        topic = NewTopic(name, PARTITIONS, replica_assignment=rows * (PARTITIONS // 2))
    admin = admin_client(settings.kafka)
    admin.create_topics([topic], operation_timeout=30)[name].result()
    deadline = time.monotonic() + 30
    while name not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        yield name
    finally:
        delete_topic(settings.kafka, name)


class PacedProducer:
    """Sends at a fixed rate on its own thread (open loop) until stopped."""

    def __init__(self, settings: Settings, topic: str, rate: float, linger_ms: int) -> None:
        self.producer = Producer(producer_config(settings.kafka, **{"linger.ms": linger_ms}))
        self.topic, self.rate = topic, rate
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                self.producer.produce(self.topic, VALUE, KEYS[self.sent % len(KEYS)])
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.002)

    def __enter__(self) -> PacedProducer:
        if self.rate > 0:
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        left = self.producer.flush(60)
        if left:
            raise RuntimeError(f"{left} records not acknowledged")


def thread_seconds(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    return {
        (pid, tid): (name, seconds)
        for pid in pids
        for tid, (name, seconds) in thread_cpu_seconds(pid).items()
    }


def window(pids: list[int], seconds: float) -> dict[str, Any]:
    """The brokers' cores over one window: in all, by thread kind, by busiest thread names."""
    before, started = thread_seconds(pids), time.monotonic()
    time.sleep(seconds)
    after, elapsed = thread_seconds(pids), time.monotonic() - started
    kinds: dict[str, float] = {}
    names: dict[str, float] = {}
    for key, (name, cpu) in after.items():
        used = (cpu - before.get(key, (name, 0.0))[1]) / elapsed
        kind = jvm_thread_kind(name)
        kinds[kind] = kinds.get(kind, 0.0) + used
        family = re.sub(r"[-#]?\d+$", "", name)  # "GC Thread#0" and "GC Thread#1" together
        names[family] = names.get(family, 0.0) + used
    busiest = sorted(names.items(), key=lambda kv: -kv[1])[:4]
    return {
        "cores": sum(kinds.values()),
        "by_kind": kinds,
        "busiest_threads": {n: round(c, 3) for n, c in busiest},
        "load_avg_1m": os.getloadavg()[0],
    }


def measure(
    settings: Settings, pids: list[int], layout: str, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    with (
        scratch_topic(settings, layout) as topic,
        PacedProducer(settings, topic, rate, args.linger_ms) as producer,
    ):
        time.sleep(args.warmup)
        windows = [window(pids, args.seconds) for _ in range(args.windows)]
    kinds = sorted({k for w in windows for k in w["by_kind"]})
    return {
        "layout": layout,
        "rate": rate,
        "linger_ms": args.linger_ms,
        "sent": producer.sent,
        "broker_cores_median": round(statistics.median(w["cores"] for w in windows), 3),
        "broker_cores_windows": [round(w["cores"], 3) for w in windows],
        "by_kind_median": {
            k: round(statistics.median(w["by_kind"].get(k, 0.0) for w in windows), 3) for k in kinds
        },
        "busiest_threads_last_window": windows[-1]["busiest_threads"],
        "load_avg_1m": [round(w["load_avg_1m"], 2) for w in windows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="0,100,1000,5000")
    parser.add_argument("--seconds", type=float, default=20, help="One window's length.")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--linger-ms", type=int, default=20)
    parser.add_argument("--layouts", default="spread,one-leader")
    args = parser.parse_args()
    settings = load_settings()
    pids = broker_pids(settings)
    if not pids:
        raise SystemExit(
            "no broker of this platform runs on this machine: `fraudstream platform up` first"
        )
    layouts = args.layouts.split(",")
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "brokers": len(pids)}}), flush=True)
    for rate in (float(r) for r in args.rates.split(",")):
        figures = {layout: measure(settings, pids, layout, rate, args) for layout in layouts}
        for result in figures.values():
            print(json.dumps({"floor": result}), flush=True)
        if "spread" in figures and "one-leader" in figures:
            spread = figures["spread"]["broker_cores_median"]
            one = figures["one-leader"]["broker_cores_median"]
            ratio = round(one / spread, 2) if spread else None
            print(json.dumps({"ratio": {"rate": rate, "one_leader_over_spread": ratio}}))


if __name__ == "__main__":
    main()
