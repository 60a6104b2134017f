"""The scorer rides out its dependencies' restarts on the real platform.

One `fraudstream score` run and one paced generator through four faults in a row (one
scorer start keeps the module's time modest): PostgreSQL, MinIO and Redis each killed
(SIGKILL to the process group) and started again by `platform up` after an outage, then
the MLflow server stopped for longer than the scorer's reload interval. The generator
never pauses, so every outage meets micro-batches that need the dead service. After
each fault: the scorer process is still running (its query may have restarted itself),
and every transaction sent so far reaches ``transactions_with_score``; the time from the
service's return to that point is printed as the catch-up time. At the end: each
transaction once in ``transactions_with_score``, the dead-letter topic holding exactly
the poison records sent, and `platform status` naming each restarted service. The API
(in process) rides out the same restarts: after PostgreSQL's and Redis's it serves a read
and a score again within a minute, answering 503 with Retry-After meanwhile, never 500.
A Kafka node's loss is tested in test_scorer.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient

from fraudstream.adapters.kafka import consumer_config, delete_topic
from fraudstream.adapters.postgres import connect
from fraudstream.api.app import create_app
from fraudstream.platform.process import ProcessRecord, alive
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.schema.tables import wire_records
from fraudstream.services.feed import PacedFeed, send_poison
from fraudstream.settings import Settings, load_settings
from tests.integration.conftest import run_cli
from tests.integration.scoring_support import (
    ScorerProcess,
    history,
    register_model,
    scored_count,
    scorer_args,
    scorer_env,
    scratch_topics,
    wait_until,
)

pytestmark = [pytest.mark.platform, pytest.mark.timeout(2400)]

RATE = 10.0  # transactions per second, sent throughout the faults
WARM_UP = 200  # transactions sent (and scored) before the paced feed starts
OUTAGE_S = 10.0
RELOAD_INTERVAL_S = 5.0
CATCH_UP_TIMEOUT_S = 600.0


@pytest.fixture(scope="module")
def model_name() -> Iterator[str]:
    name = f"fraud-detector-faults-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUDSTREAM_MLFLOW_MODEL_NAME", name)
        yield name


def _feed(settings: Settings, topic: str, seed: int) -> PacedFeed:
    """A generated history, sent to ``topic`` at ``RATE`` once started."""
    data = history(seed=seed, days=30, customers=300)
    records = [(k, v) for _, k, v in wire_records(data.table, "transaction")]
    return PacedFeed(settings.kafka, topic, records, RATE)


def _topic_keys(settings: Settings, topic: str, idle_s: float = 10.0) -> list[str]:
    consumer = Consumer(consumer_config(settings.kafka, f"faults-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    keys: list[str] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            keys.append((msg.key() or b"").decode())
            last = time.monotonic()
    finally:
        consumer.close()
    return keys


def _restarts(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("fraudstream_scorer_restarts_total "):
                return float(line.split()[1])
    return float("nan")


def _stop(platform: EmbeddedPlatform, service: str, sig: int) -> None:
    record = ProcessRecord.load(platform.run_dir, service)
    assert record is not None, f"{service} was not started"
    assert alive(record), f"{service} is not running"
    os.killpg(record.pid, sig)
    deadline = time.monotonic() + 30
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(record), f"{service} did not stop"


def _api_serves_again(api: TestClient, call: Callable[[TestClient], Any], what: str) -> int:
    """Call the API until it answers 200 (at most 60 s); every answer on the way must be a
    503 with Retry-After, never a 500. Returns how many 503s it took."""
    refused = 0
    deadline = time.monotonic() + 60
    while True:
        response = call(api)
        if response.status_code == 200:
            return refused
        assert response.status_code == 503, (what, response.status_code, response.text)
        assert response.headers.get("retry-after"), response.headers
        refused += 1
        assert time.monotonic() < deadline, f"the API did not serve {what} again within 60 s"
        time.sleep(1)


def test_the_scorer_rides_out_postgres_minio_redis_and_mlflow_restarts(
    model_name: str, platform: EmbeddedPlatform, tmp_path: Path
) -> None:
    settings = load_settings()
    register_model(settings, history(seed=41), threshold=0.3, seed=1)
    topics = scratch_topics(settings, "faults")
    feed = _feed(settings, topics["source"], seed=42)
    poison = send_poison(settings.kafka, topics["source"])
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/test/{uuid.uuid4().hex[:10]}"
    args = scorer_args(topics, checkpoint, "--reload-interval", str(RELOAD_INTERVAL_S))
    env = scorer_env(model_name, labels_topic=topics["labels"])
    scorer = ScorerProcess(args, env, tmp_path / "scorer.log")
    metrics_port = settings.scorer.metrics_port
    catch_up: dict[str, float] = {}
    token = settings.api.token
    assert token is not None
    auth = {"Authorization": f"Bearer {token.get_secret_value()}"}
    # The API rides out the same restarts: a read from PostgreSQL, a score from Redis.
    checks: dict[str, Callable[[TestClient], Any]] = {
        "postgres": lambda api: api.get(f"/transactions/{feed.all_ids[0]}", headers=auth),
        "redis": lambda api: api.post("/score", content=feed.records[0][1], headers=auth),
    }
    stack = contextlib.ExitStack()
    try:
        warm = feed.prime(WARM_UP)
        wait_until(lambda: scored_count(settings, warm) == len(warm), 900, "a start", scorer)
        api = stack.enter_context(TestClient(create_app(settings)))
        for name, check in checks.items():
            assert check(api).status_code == 200, name  # its pool and client are connected
        feed.start()
        faults = [
            ("postgres", signal.SIGKILL, OUTAGE_S),
            ("minio", signal.SIGKILL, OUTAGE_S),
            ("redis", signal.SIGKILL, OUTAGE_S),
            ("mlflow", signal.SIGTERM, 3 * RELOAD_INTERVAL_S),
        ]
        for service, sig, outage_s in faults:
            _stop(platform, service, sig)
            time.sleep(outage_s)
            status = json.loads(run_cli("platform", "up", "--json").stdout)
            back = time.monotonic()
            assert status["healthy"], status
            if service in checks:
                refused = _api_serves_again(api, checks[service], f"after {service}'s restart")
                print(f"API after {service}: {refused} request(s) refused with 503 first")
            due = feed.ids()
            wait_until(
                lambda due=due: scored_count(settings, due) == len(due),
                CATCH_UP_TIMEOUT_S,
                f"the transactions sent until {service} was back",
                scorer,
            )
            catch_up[service] = time.monotonic() - back
            assert scorer.alive(), f"the scorer exited after the {service} fault"
            print(
                f"{service}: down {outage_s:.0f} s, caught up {catch_up[service]:.1f} s after "
                f"its return ({len(due)} transactions sent so far)"
            )
        feed.halt.set()
        feed.join(60)
        assert feed.error is None, feed.error
        sent = feed.ids()
        wait_until(
            lambda: scored_count(settings, sent) == len(sent), 300, "every transaction", scorer
        )
        restarts = _restarts(metrics_port)
    finally:
        stack.close()
        feed.halt.set()
        if scorer.alive():
            scorer.proc.send_signal(signal.SIGTERM)
            scorer.wait(180)
        run_cli("platform", "up", "--json")  # whatever the outcome, later tests get a platform
    print(f"catch-up times (s): {json.dumps({k: round(v, 1) for k, v in catch_up.items()})}")
    print(f"scorer query restarts: {restarts:.0f}")

    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM transactions_with_score "
            "WHERE transaction_id = ANY(%s)",
            (sent,),
        )
        assert cur.fetchone() == (len(sent), len(sent))
    dead = _topic_keys(settings, topics["dead"])
    assert set(dead) == poison, "the dead-letter topic holds only the poison records sent"
    rows = {
        r["service"]: r
        for r in json.loads(run_cli("platform", "status", "--json").stdout)["services"]
    }
    for service in ("postgres", "minio", "redis", "mlflow"):
        assert rows[service]["restarts"] >= 1, rows[service]
        assert rows[service]["restarted_at"], rows[service]
    for name in topics.values():
        delete_topic(settings.kafka, name)
