"""POST /score under open-loop load: capacity at a tight tail, and what is left at twice it.

Prints figures, asserts nothing. Needs a running platform (`fraudstream platform up`, or the
FRAUDSTREAM_* settings of another). Registers a model like a trained champion (200 trees of
depth 6) under a model name of its own, publishes the card and merchant states of a generated
history (--cards cards) to the online store, and starts `fraudstream serve --workers N` on a
loopback port of its own.

The load generator runs in its own process (so it does not share the server's interpreter),
open loop: request i is due at start + i / rate whatever happened to the ones before, on one of
a pool of keep-alive connections (a new one when all are busy), and its latency is measured
from that due time, so time spent queueing anywhere, the client included, is counted. A
request unanswered 5 s after its due time counts as timed out. Per rate (--seconds each, after
a warm-up at the lowest rate): offered and achieved rates, answered (200), shed (503),
timed out, p50/p90/p99/max of the answered, p99 of the refusals, and the server's CPU per
request (its processes, from /proc).

``capacity_rps`` is the highest rate of --rates answered with p99 <= 10 ms and nothing shed or
timed out; the server is then offered twice that, and ``goodput_ratio`` is the rate answered
within 100 ms divided by the capacity. The last line is one JSON object.

Per rate also: ``busiest``, the busiest server process's share of the server's CPU (0.5 with
two workers evenly loaded), and the load average. With ``--pythonpath OTHER/src`` a second
server runs another checkout's code beside this one, both are offered each rate in turn, and the
JSON line gains ``baseline`` (its figures) and ``cpu_per_request_ratio`` (this / baseline).
With ``--rules N`` the second server runs this code too, and the two decide with rule sets of
their own: each serves a scratch database (so the platform's active set is left alone), the
first's with N rules active (the starter's and synthetic ones, bench/rules.py), the baseline's
with none; the JSON line gains ``p99_added_ms`` per rate (with rules - without).

Usage: python bench/api_load.py [--rates 250,500,750,1000,1250,1500] [--seconds 15]
       [--workers 2] [--max-in-flight N] [--cards 5000] [--pythonpath OTHER/src | --rules N]
       [--server-cpus 0 --client-cpus 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

CLI = str(Path(sys.executable).parent / "fraudstream")
HOST = "127.0.0.1"
TIMEOUT_S = 5.0
CAPACITY_P99_MS = 10.0
GOODPUT_WITHIN_S = 0.1


# -- the load generator (its own process) ---------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, done: Any) -> None:
        self.done, self.buffer = done, b""
        self.transport: asyncio.Transport | None = None
        self.request: int | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, index: int, payload: bytes) -> None:
        assert self.transport is not None
        self.request, self.buffer = index, b""
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.request is None:
            return
        head = self.buffer[:head_end].lower() + b"\r\n"
        at = head.find(b"content-length:") + 15
        if len(self.buffer) - head_end - 4 < int(head[at : head.find(b"\r\n", at)]):
            return
        status, index, self.request = int(self.buffer[9:12]), self.request, None
        self.done(self, index, status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.request is not None:
            index, self.request = self.request, None
            self.done(self, index, -1)
        self.transport = None


async def _drive(requests: list[bytes], rate: float, seconds: float, port: int) -> Any:
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    latency = np.full(count, np.nan)
    status = np.zeros(count, dtype=np.int16)  # 0: not answered in time
    idle: collections.deque[_Connection] = collections.deque()
    busy: dict[int, _Connection] = {}
    waiting: collections.deque[int] = collections.deque()  # due, no free connection yet
    start = loop.time() + 0.05

    def done(conn: _Connection, index: int, code: int) -> None:
        busy.pop(index, None)
        latency[index] = loop.time() - (start + index / rate)
        status[index] = code
        if conn.transport is not None and code > 0:
            if waiting:
                nxt = waiting.popleft()
                busy[nxt] = conn
                conn.send(nxt, requests[nxt % len(requests)])
            else:
                idle.append(conn)

    async def connect() -> _Connection:
        _, conn = await loop.create_connection(lambda: _Connection(done), HOST, port)
        return conn

    opening = 0
    tasks: set[asyncio.Task[None]] = set()

    async def open_for(index: int) -> None:
        nonlocal opening
        try:
            conn = await connect()
        except OSError:
            status[index] = -2
            return
        finally:
            opening -= 1
        busy[index] = conn
        conn.send(index, requests[index % len(requests)])

    idle.extend([await connect() for _ in range(32)])
    sent, next_sweep = 0, start
    while sent < count or busy or waiting or opening:
        now = loop.time()
        while sent < count and start + sent / rate <= now:
            while idle and idle[0].transport is None:  # closed by the server while idle
                idle.popleft()
            if idle:
                conn = idle.popleft()
                busy[sent] = conn
                conn.send(sent, requests[sent % len(requests)])
            elif len(busy) + opening < 2000:
                opening += 1
                tasks.add(task := loop.create_task(open_for(sent)))
                task.add_done_callback(tasks.discard)
            else:
                waiting.append(sent)
            sent += 1
        if now >= next_sweep:  # requests unanswered after TIMEOUT_S: give up on them
            next_sweep = now + 0.1
            for index in [i for i in busy if now - (start + i / rate) > TIMEOUT_S]:
                conn = busy.pop(index)
                conn.request = None
                if conn.transport is not None:
                    conn.transport.close()
            while waiting and now - (start + waiting[0] / rate) > TIMEOUT_S:
                waiting.popleft()
        if sent >= count and now - (start + count / rate) > TIMEOUT_S + 0.5:
            break
        due = start + sent / rate if sent < count else now + 0.01
        await asyncio.sleep(max(0.0, min(due - loop.time(), 0.002)))
    for conn in [*idle, *busy.values()]:
        if conn.transport is not None:
            conn.transport.close()
    return latency, status


def generate_load(
    requests: list[bytes],
    rate: float,
    seconds: float,
    port: int,
    out: Connection,
    cpus: frozenset[int] | None = None,
) -> None:
    """The generator process's body: drive one rate and send (latency, status) back."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    out.send(asyncio.run(_drive(requests, rate, seconds, port)))
    out.close()


# -- the server and the data ----------------------------------------------------------------


def _server_cpu_seconds(root: int) -> dict[int, float]:
    """CPU seconds of each process in the server's tree (the supervisor and its workers)."""
    from fraudstream.platform.process import running_processes

    procs = running_processes()
    children: dict[int, list[int]] = collections.defaultdict(list)
    for p in procs:
        children[p.ppid].append(p.pid)
    tree, stack = set(), [root]
    while stack:
        pid = stack.pop()
        tree.add(pid)
        stack.extend(children[pid])
    return {p.pid: p.cpu_seconds for p in procs if p.pid in tree}


def _prepare(settings: Any, cards: int) -> list[bytes]:
    """Register the model, publish the history's states; request bodies of the probes."""
    import pandas as pd
    from xgboost import XGBClassifier

    from fraudstream.adapters import registry
    from fraudstream.adapters.online_store import OnlineStore, publish_states
    from fraudstream.features.card import CardState, update_card
    from fraudstream.features.catalogue import feature_names
    from fraudstream.features.events import from_record
    from fraudstream.features.merchant import MerchantState, update_merchant
    from fraudstream.features.replay import attach_labels, build_features
    from fraudstream.generator import GeneratorConfig, generate
    from fraudstream.model.experiment import Experiment
    from fraudstream.model.split import TimeSplit
    from fraudstream.schema.tables import wire_records
    from fraudstream.services.models import register_experiment

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=15)
    config = GeneratorConfig(seed=5, start=start, days=14, customers=cards, merchants=500)
    data = generate(config, id_prefix=f"bench-load-{uuid.uuid4().hex[:6]}")
    txns, labels = data.transactions.to_pandas(), data.labels.to_pandas()
    features = attach_labels(build_features(txns, labels), labels)
    model = XGBClassifier(n_estimators=200, max_depth=6, n_jobs=1, random_state=0)
    model.fit(features[feature_names()].to_numpy(np.float64), features["is_fraud"].to_numpy())
    split = TimeSplit(pd.Timestamp(start), 10, 2, 2)
    experiment = Experiment(model, "xgboost", 0.5, {"bench": True}, split, {}, {})
    _, version = register_experiment(settings, experiment, git_sha="bench")
    registry.set_champion(settings, version, "bench")
    # The states the stream would publish, from the functions it updates them with.
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for record in txns.sort_values(["event_time", "transaction_id"]).to_dict("records"):
        txn = from_record(record)
        cards[txn.card_id], _ = update_card(cards.get(txn.card_id), txn)
        merchants[txn.merchant_id], _ = update_merchant(merchants.get(txn.merchant_id), txn)
    publish_states(OnlineStore(settings.redis), cards, merchants)
    bodies = [body for _, _, body in wire_records(data.transactions, "transaction")]
    rng = np.random.default_rng(0)
    picked = rng.choice(len(bodies), size=min(20_000, len(bodies)), replace=False)
    token = settings.api.read_token.get_secret_value().encode()  # the analyst's: reads only
    return [
        b"POST /score HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % (token, len(bodies[i]), bodies[i])
        for i in picked
    ]


def _start_server(
    port: int, workers: int, env: dict[str, str], log: Path, cpus: frozenset[int] | None = None
) -> subprocess.Popen:
    args = [CLI, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(
        args,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        # The workers are the server's children: they inherit its CPUs.
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    deadline = time.monotonic() + 600  # workers import the model stack: slow on a busy machine
    seen: set[int] = set()
    while time.monotonic() < deadline and len(seen) < workers:
        if server.poll() is not None:
            raise SystemExit(f"`fraudstream serve` exited {server.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health/ready", timeout=2) as r:
                seen.add(json.loads(r.read())["worker"])
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.5)
    if len(seen) < workers:
        server.terminate()
        raise SystemExit(f"the API did not become ready on port {port}; see {log}")
    return server


# -- one rate, the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class RateResult:
    rate: float
    sent: int
    answered: int
    shed: int
    timed_out: int
    good_rps: float  # answered within 100 ms, per second
    p50: float
    p90: float
    p99: float
    max: float
    shed_p99: float
    cpu_us: float  # server CPU per request sent
    busiest: float  # the busiest process's share of the server's CPU (1/workers: even)
    load: float  # the machine's 1-minute load average after the rate

    def row(self, label: str = "") -> str:
        return (
            f"{label:<9}{self.rate:>7.0f} {self.sent:>7} {self.answered:>8} {self.shed:>6} "
            f"{self.timed_out:>6} {self.p50:>7.2f} {self.p90:>7.2f} {self.p99:>8.2f} "
            f"{self.max:>8.1f} {self.shed_p99:>8.2f} {self.cpu_us:>7.0f} {self.busiest:>7.2f} "
            f"{self.load:>5.1f}"
        )


HEADER = (
    "code        rate/s    sent answered   shed  t/out  p50 ms  p90 ms   p99 ms   max ms "
    "503p99ms  cpu us busiest  load"
)


def _ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if len(values) else float("nan")


def run_rate(
    requests: list[bytes],
    rate: float,
    seconds: float,
    port: int,
    root: int,
    cpus: frozenset[int] | None = None,
) -> Any:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    generator = ctx.Process(target=generate_load, args=(requests, rate, seconds, port, send, cpus))
    cpu_before = _server_cpu_seconds(root)
    generator.start()
    latency, status = receive.recv()
    generator.join()
    cpu_after = _server_cpu_seconds(root)
    used = [cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after]
    cpu = sum(used)
    ok, shed = latency[status == 200], latency[status == 503]
    return RateResult(
        rate=rate,
        sent=len(status),
        answered=len(ok),
        shed=len(shed),
        timed_out=int(np.sum(status <= 0)),
        good_rps=float(np.sum(ok <= GOODPUT_WITHIN_S)) / seconds,
        p50=_ms(ok, 50),
        p90=_ms(ok, 90),
        p99=_ms(ok, 99),
        max=_ms(ok, 100),
        shed_p99=_ms(shed, 99),
        cpu_us=cpu / max(1, len(status)) * 1e6,
        busiest=max(used, default=0.0) / cpu if cpu > 0 else float("nan"),
        load=os.getloadavg()[0],
    )


def _summary(results: list[RateResult], over: RateResult | None) -> dict[str, Any]:
    kept = [
        r.rate for r in results if r.p99 <= CAPACITY_P99_MS and r.shed == 0 and r.timed_out == 0
    ]
    capacity = max(kept, default=0.0)
    summary: dict[str, Any] = {"capacity_rps": capacity}
    if capacity and over is not None:
        summary |= {
            "overload_rps": 2 * capacity,
            "goodput_ratio": round(over.good_rps / capacity, 3),
            "overload_answered": over.answered,
            "overload_shed": over.shed,
            "overload_timed_out": over.timed_out,
            "overload_p99_ms": round(over.p99, 2),
            "overload_shed_p99_ms": round(over.shed_p99, 2),
        }
    summary["cpu_us_per_request_at_capacity"] = next(
        (round(r.cpu_us) for r in results if r.rate == capacity), None
    )
    summary["cpu_us_per_request"] = {f"{r.rate:.0f}": round(r.cpu_us) for r in results}
    summary["p99_ms"] = {f"{r.rate:.0f}": round(r.p99, 2) for r in results}
    summary["busiest_worker_share"] = {f"{r.rate:.0f}": round(r.busiest, 2) for r in results}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,750,1000,1250,1500")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--port", type=int, default=18199)
    parser.add_argument("--log", default="bench-api-load.log", help="The server's output.")
    parser.add_argument(
        "--pythonpath",
        default="",
        help="Also serve OTHER/src (another checkout) as a baseline, on --port + 1, and offer "
        "both the same rates in turn; the JSON line gains `baseline` and the ratios.",
    )
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        help="Serve twice, with N active rules and without a rule set (each its own scratch "
        "database), and offer both the same rates in turn; the JSON line gains `baseline`.",
    )
    parser.add_argument(
        "--server-cpus",
        default="",
        help="CPUs the server and its workers run on (e.g. 0), so that the load generator, "
        "given --client-cpus (e.g. 1), does not take the server's CPU time.",
    )
    parser.add_argument("--client-cpus", default="", help="CPUs the load generator runs on.")
    args = parser.parse_args()
    if args.rules and args.pythonpath:
        parser.error("--rules and --pythonpath each take the second server: choose one")
    with contextlib.ExitStack() as stack:
        run(args, stack)


def _rule_databases(stack: contextlib.ExitStack, rules: int) -> tuple[str, str]:
    """Two migrated scratch databases (dropped at exit): one with ``rules`` rules active,
    one without a rule set."""
    from fraudstream.adapters.postgres import migrate, scratch_database
    from fraudstream.services.rules import activate
    from fraudstream.settings import load_settings
    from rules import rule_document

    postgres = load_settings().postgres
    ruled = stack.enter_context(scratch_database(postgres, "bench"))
    plain = stack.enter_context(scratch_database(postgres, "bench"))
    for database in (ruled, plain):
        migrate(database)
    activate(ruled, rule_document(rules), "bench", f"{rules} rules")
    return ruled.database, plain.database


def _cpus(text: str) -> frozenset[int] | None:
    """``0,1`` as CPU numbers (None: wherever the scheduler puts it)."""
    if not text:
        return None
    try:
        cpus = frozenset(int(c) for c in text.split(","))
    except ValueError:
        raise SystemExit(f"CPUs are numbers separated by commas (e.g. 0,1), not {text!r}") from None
    if not cpus <= os.sched_getaffinity(0):
        raise SystemExit(
            f"CPUs {sorted(cpus)}: this process may use {sorted(os.sched_getaffinity(0))}"
        )
    return cpus


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    name = f"fraud-detector-bench-{uuid.uuid4().hex[:6]}"
    os.environ["FRAUDSTREAM_MLFLOW_MODEL_NAME"] = name  # read by the settings and the server
    if args.max_in_flight is not None:
        os.environ["FRAUDSTREAM_API_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    from fraudstream.settings import load_settings

    settings = load_settings()
    requests = _prepare(settings, args.cards)
    server_cpus, client_cpus = _cpus(args.server_cpus), _cpus(args.client_cpus)
    codes = {"this": (args.port, dict(os.environ))}
    if args.pythonpath:
        codes["baseline"] = (args.port + 1, dict(os.environ, PYTHONPATH=args.pythonpath))
    if args.rules:
        ruled, plain = _rule_databases(stack, args.rules)
        database = "FRAUDSTREAM_POSTGRES_DATABASE"
        codes = {
            "this": (args.port, dict(os.environ, **{database: ruled})),
            "baseline": (args.port + 1, dict(os.environ, **{database: plain})),
        }
    servers = {}
    try:
        for code, (port, env) in codes.items():
            log = Path(args.log).with_suffix(f".{code}.log") if len(codes) > 1 else Path(args.log)
            servers[code] = _start_server(port, args.workers, env, log, server_cpus)
        rates = [float(r) for r in args.rates.split(",")]
        machine = {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "server_cpus": sorted(server_cpus or ()),
            "client_cpus": sorted(client_cpus or ()),
        }
        print(json.dumps({"machine": machine, "workers": args.workers, "model": name}))
        for code, server in servers.items():
            run_rate(requests, rates[0], args.warmup, codes[code][0], server.pid, client_cpus)
        print(HEADER)
        results: dict[str, list[RateResult]] = {code: [] for code in servers}
        for rate in rates:
            for code, server in servers.items():
                result = run_rate(
                    requests, rate, args.seconds, codes[code][0], server.pid, client_cpus
                )
                results[code].append(result)
                print(result.row(code), flush=True)
                time.sleep(1)
        summaries = {}
        for code, server in servers.items():
            capacity = _summary(results[code], None)["capacity_rps"]
            over = None
            if capacity:
                over = run_rate(
                    requests, 2 * capacity, args.seconds, codes[code][0], server.pid, client_cpus
                )
                print(over.row(code), "(twice the capacity)", flush=True)
            summaries[code] = _summary(results[code], over)
        summary = summaries["this"] | {
            "rules": args.rules,
            "workers": args.workers,
            "max_in_flight": settings.api.max_in_flight,
            "seconds_per_rate": args.seconds,
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
        if "baseline" in summaries:
            base = summaries["baseline"]
            summary["baseline"] = base
            summary["cpu_per_request_ratio"] = {
                rate: round(cpu / base["cpu_us_per_request"][rate], 3)
                for rate, cpu in summaries["this"]["cpu_us_per_request"].items()
            }
            summary["p99_added_ms"] = {
                rate: round(p99 - base["p99_ms"][rate], 2)
                for rate, p99 in summaries["this"]["p99_ms"].items()
            }
        print(json.dumps(summary))
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
