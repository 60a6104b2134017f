"""One scorer through five dependency faults in a row: how long does it take to catch up?

Needs a running platform (`fraudstream platform up`, or the FRAUDSTREAM_* settings of
another); it kills and restarts that platform's services, so do not point it at one
anybody else uses. A paced generator sends live transactions (and a few poison records)
to a scratch topic throughout (after 200 sent at once and scored, to warm Spark up), and
one `fraudstream score` run scores them while, one after the other:

- PostgreSQL, MinIO and Redis are each killed (SIGKILL to the process group) and
  started again by `fraudstream platform up` after --outage seconds;
- the MLflow server is stopped for three reload intervals and started again;
- a Kafka node is killed and started again after --outage seconds.

After each fault it waits until every transaction sent so far is in
``transactions_with_score`` and prints the catch-up time: from `platform up` returning
(the service is back) to that point. At the end it checks each transaction is stored
once and the dead-letter topic holds only the poison records sent, and reads the
scorer's query restarts (``fraudstream_scorer_restarts_total``).

Prints figures, asserts nothing. The last line is one JSON object: ``catch_up_s`` per
fault, ``restarts``, ``sent``, ``stored_once`` and ``dead_letters_only_poison`` (or
``error``).

Usage: python bench/faults.py [--rate 10] [--outage 10] [--reload-interval 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).parent))  # the helpers of bench/stream.py

from fraudstream.adapters.kafka import (
    consumer_config,
    create_scratch_topic,
    delete_topic,
)
from fraudstream.adapters.postgres import connect
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.platform.process import ProcessRecord, alive
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.schema.tables import wire_records
from fraudstream.services.feed import PacedFeed, send_poison
from fraudstream.settings import ScorerSettings, Settings, load_settings
from stream import CLI, START, _model


def _feed(settings: Settings, topic: str, rate: float) -> PacedFeed:
    """Live transactions for ``topic`` at ``rate`` per second once started."""
    data = generate(
        GeneratorConfig(seed=7, start=START, days=40, customers=400, merchants=300),
        id_prefix=f"faults-{uuid.uuid4().hex[:8]}",
    )
    records = [(k, v) for _, k, v in wire_records(data.transactions, "transaction")]
    return PacedFeed(settings.kafka, topic, records, rate)


def _stored(settings: Settings, ids: list[str]) -> tuple[int, int]:
    """(rows, distinct transactions) of ``ids`` in transactions_with_score."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM transactions_with_score "
            "WHERE transaction_id = ANY(%s)",
            (ids,),
        )
        rows, distinct = cur.fetchone()  # type: ignore[misc]
    return int(rows), int(distinct)


def _wait_stored(settings: Settings, ids: list[str], timeout_s: float, scorer: Any) -> float:
    """Seconds until every one of ``ids`` is stored; raises on timeout or a dead scorer."""
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout_s:
        if scorer.poll() is not None:
            raise RuntimeError(f"the scorer exited with {scorer.returncode}")
        try:
            if _stored(settings, ids)[1] == len(ids):
                return time.monotonic() - started
        except Exception as exc:  # PostgreSQL may still be starting
            last = exc
        time.sleep(0.5)
    raise TimeoutError(
        f"{len(ids)} transactions not all stored after {timeout_s:.0f} s (last error: {last})"
    )


def _kill(platform: EmbeddedPlatform, service: str, sig: int) -> None:
    record = ProcessRecord.load(platform.run_dir, service)
    if record is None or not alive(record):
        raise RuntimeError(f"{service} is not running")
    os.killpg(record.pid, sig)
    deadline = time.monotonic() + 30
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.2)


def _platform_up() -> None:
    subprocess.run([CLI, "platform", "up", "--json"], check=True, capture_output=True)


def _restarts(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("fraudstream_scorer_restarts_total "):
            return int(float(line.split()[1]))
    return -1


def _dead_letter_keys(settings: Settings, topic: str) -> set[str]:
    consumer = Consumer(consumer_config(settings.kafka, f"faults-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    keys, last = set(), time.monotonic()
    while time.monotonic() - last < 10:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            keys.add((msg.key() or b"").decode())
            last = time.monotonic()
    consumer.close()
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="Transactions per second.")
    parser.add_argument("--outage", type=float, default=10.0, help="Seconds each service is down.")
    parser.add_argument("--reload-interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="Catch-up limit per fault.")
    parser.add_argument("--log", default="bench-faults-scorer.log", help="The scorer's output.")
    args = parser.parse_args()
    name = f"fraud-detector-faults-{uuid.uuid4().hex[:6]}"
    os.environ["FRAUDSTREAM_MLFLOW_MODEL_NAME"] = name  # read by the settings and the scorer
    settings = load_settings()
    platform = EmbeddedPlatform(settings)
    _model(settings, name)
    topics = {k: create_scratch_topic(settings.kafka, f"faults-{k}") for k in ("in", "p", "a", "d")}
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/bench/faults-{uuid.uuid4().hex[:8]}"
    feed = _feed(settings, topics["in"], args.rate)
    poison = send_poison(settings.kafka, topics["in"])
    argv = [
        CLI, "score", "--source", topics["in"], "--predictions", topics["p"],
        "--alerts", topics["a"], "--dead-letters", topics["d"], "--checkpoint", checkpoint,
        "--trigger", "1", "--reload-interval", str(args.reload_interval),
    ]  # fmt: skip
    faults = [
        ("postgres", signal.SIGKILL, args.outage),
        ("minio", signal.SIGKILL, args.outage),
        ("redis", signal.SIGKILL, args.outage),
        ("mlflow", signal.SIGTERM, 3 * args.reload_interval),
        (platform.kafka_nodes[-1].name, signal.SIGKILL, args.outage),
    ]
    catch_up: dict[str, float] = {}
    result: dict[str, Any] = {}
    with Path(args.log).open("ab") as log:
        scorer = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_stored(settings, feed.prime(200), 900, scorer)  # Spark and the model warm
            feed.start()
            for service, sig, outage in faults:
                _kill(platform, service, sig)
                time.sleep(outage)
                _platform_up()
                due = feed.ids()
                catch_up[service] = round(_wait_stored(settings, due, args.timeout, scorer), 1)
                print(
                    f"{service}: down {outage:.0f} s; caught up {catch_up[service]} s after its "
                    f"return ({len(due):,} transactions sent so far)",
                    flush=True,
                )
            feed.halt.set()
            feed.join(60)
            sent = feed.ids()
            _wait_stored(settings, sent, args.timeout, scorer)
            rows, distinct = _stored(settings, sent)
            result = {
                "catch_up_s": catch_up,
                "restarts": _restarts(ScorerSettings().metrics_port),
                "sent": len(sent),
                "stored_once": rows == distinct == len(sent),
                "dead_letters_only_poison": _dead_letter_keys(settings, topics["d"]) == poison,
            }
        except Exception as exc:
            result = {"catch_up_s": catch_up, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            feed.halt.set()
            if scorer.poll() is None:
                scorer.send_signal(signal.SIGTERM)
                scorer.wait(180)
            _platform_up()
            for topic in topics.values():
                delete_topic(settings.kafka, topic)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
