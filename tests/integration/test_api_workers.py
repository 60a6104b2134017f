"""`fraudstream serve` as a user starts it, against the real platform: every route admits the
roles it should, a saturated worker refuses at once and recovers, every worker of two
reloads the champion when its alias moves and takes its share of the connections, and every
worker of two decides with a newly activated rule set without a restart."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.xgboost
import psycopg2
from fastapi.routing import APIRoute, iter_route_contexts
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from fraudstream.adapters import registry
from fraudstream.api.app import create_app
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from tests.integration.api_support import (
    World,
    blocking_rule_set,
    named,
    reader_headers,
    serve,
    wire,
    writer_headers,
)
from tests.integration.conftest import scratch_env

OPEN = {("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}


def test_every_endpoint_serves_the_roles_it_admits(api_world: World, tmp_path: Path) -> None:
    """From the route table, against `fraudstream serve`: the analyst's token reads every
    read endpoint (the alert stream included), the writer's token writes, the analyst's
    does not (tests/unit/test_api_auth.py refuses the missing and the wrong tokens)."""
    endpoints = sorted(
        (method, str(context.path))
        for context in iter_route_contexts(create_app(api_world.settings).routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.original_route.methods
    )
    alert_id = api_world.alert_ids[-1]
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/score"): wire(api_world.held_out),
        ("POST", "/alerts/{transaction_id}/verdict"): {"verdict": "rejected", "analyst": "rt"},
        # A set that never fires: the other tests' decisions stay the model's.
        ("PUT", "/rules"): {
            "rule_set": {
                "version": f"roles-{uuid.uuid4().hex[:8]}",
                "rules": [{"name": "never", "condition": "amount < 0", "outcome": "review"}],
            },
            "activated_by": "rt",
        },
    }
    writes = {("POST", "/alerts/{transaction_id}/verdict"), ("PUT", "/rules")}
    reader, writer = reader_headers(api_world), writer_headers(api_world)
    with serve(api_world, 1, tmp_path) as url:
        for method, path in endpoints:
            if (method, path) in OPEN:
                continue
            assert method == "GET" or (method, path) in bodies, f"{method} {path}: add a body"
            target = url + re.sub(r"\{[^}]+\}", alert_id, path)
            body = bodies.get((method, path))
            if (method, path) in writes:
                refused = httpx.request(method, target, json=body, headers=reader, timeout=30)
                assert refused.status_code == 403, (method, path, refused.text)
                done = httpx.request(method, target, json=body, headers=writer, timeout=30)
                assert done.status_code == 200, (method, path, done.text)
                continue
            with httpx.stream(method, target, json=body, headers=reader, timeout=30) as answer:
                assert answer.status_code == 200, (method, path, answer.read())
                assert next(answer.iter_bytes()), (method, path)  # the stream's first bytes


def _serving(
    url: str, workers: int, timeout_s: float = 120, check: str = "model"
) -> dict[int, str]:
    """What each worker reports serving (worker pid -> its ``check``: the model's, or the
    rules'), every worker seen once.

    Readiness is asked in bursts of parallel new connections, which the kernel hands to
    whichever workers accept them.
    """
    found: dict[int, str] = {}
    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(8) as pool:
        while len(found) < workers and time.monotonic() < deadline:
            burst = [pool.submit(httpx.get, f"{url}/health/ready", timeout=30) for _ in range(8)]
            for answer in burst:
                body = answer.result().json()
                found.setdefault(body["worker"], body["checks"][check])
    return found


def test_a_saturated_worker_refuses_at_once_and_recovers(api_world: World, tmp_path: Path) -> None:
    txn = wire(api_world.txns.iloc[-1].to_dict())
    with serve(api_world, 1, tmp_path, FRAUDSTREAM_API_MAX_IN_FLIGHT="2") as url:
        reader = reader_headers(api_world)
        assert httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10).status_code == 200
        # Two dashboard reads held in flight by a lock on the alerts table fill the worker.
        holder = psycopg2.connect(api_world.settings.postgres.dsn())
        holder.cursor().execute("LOCK TABLE fraud_alerts IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(2) as pool:
            reads = [
                pool.submit(httpx.get, f"{url}/alerts", headers=reader, timeout=60)
                for _ in range(2)
            ]
            try:
                deadline = time.monotonic() + 30
                while (
                    "saturated"
                    not in httpx.get(f"{url}/health/ready").json()["checks"]["admission"]
                ):
                    assert time.monotonic() < deadline, "the two reads never were in flight"
                    time.sleep(0.1)
                refused = httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10)
                ready = httpx.get(f"{url}/health/ready", timeout=10)
                metrics = httpx.get(f"{url}/metrics", timeout=10).text
            finally:
                holder.rollback()
                holder.close()
            assert [r.result().status_code for r in reads] == [200, 200]
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        problem = refused.json()
        assert problem["type"].endswith("/overloaded")
        assert problem["status"] == 503
        assert problem["instance"] == "/score"
        assert ready.status_code == 200  # saturation is reported, not a reason to leave
        assert ready.json()["checks"]["admission"].startswith("saturated, refusing: 2 of 2")
        assert "fraudstream_api_requests_shed_total 1.0" in metrics
        # Load fell: the worker admits again.
        again = httpx.post(f"{url}/score", json=txn, headers=reader, timeout=10)
        assert again.status_code == 200, again.text
        assert again.json()["model_version"] == api_world.model_version
        checks = httpx.get(f"{url}/health/ready", timeout=10).json()["checks"]
        assert checks["admission"] == "ok: 0 of 2 in flight, 1 refused so far"


def test_every_worker_reloads_the_champion_when_the_alias_moves(
    api_world: World, tmp_path: Path
) -> None:
    # A model of its own (the API world's, logged twice), so that moving its alias
    # changes nothing for the other tests.
    name = f"fraud-detector-reload-{uuid.uuid4().hex[:6]}"
    loaded = registry.load_model(api_world.settings, api_world.model_version)
    mlflow.set_tracking_uri(api_world.settings.mlflow.uri)
    mlflow.set_experiment("api-tests")
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            info = mlflow.xgboost.log_model(
                loaded.model,
                name="model",
                registered_model_name=name,
                metadata={
                    "threshold": loaded.threshold,
                    "feature_set_version": FEATURE_SET_VERSION,
                    "feature_names": feature_names(),
                    "model_kind": "xgboost",
                },
            )
        versions.append(str(info.registered_model_version))
    first, second = versions
    mlflow_client = MlflowClient(api_world.settings.mlflow.uri)
    mlflow_client.set_registered_model_alias(name, "champion", first)
    world = World(**{**api_world.__dict__, "settings": named(api_world.settings, name)})
    with serve(world, 2, tmp_path, reload_interval=1) as url:
        before = _serving(url, 2)
        assert len(before) == 2
        assert all(f"serving version {first} " in check for check in before.values())
        mlflow_client.set_registered_model_alias(name, "champion", second)
        deadline = time.monotonic() + 300  # a poll each second, then a load from the registry
        after = _serving(url, 2)
        while not all(f"serving version {second} " in c for c in after.values()):
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
            after = _serving(url, 2)
        assert len(after) == 2
        scored = httpx.post(
            f"{url}/score", json=wire(world.held_out), headers=reader_headers(world), timeout=30
        )
        assert scored.json()["model_version"] == second
        # A scrape, whichever worker answers it, counts every worker's requests.
        before_count = _ready_requests(url)
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(httpx.get, f"{url}/health/ready", timeout=30) for _ in range(40)]
            workers = {a.result().json()["worker"] for a in answers}
        assert len(workers) == 2
        assert _ready_requests(url) - before_count == 40
        # A client's keep-alive connections, opened at once, are spread over the workers
        # (a socket per worker): with one shared socket, the worker that woke first
        # accepted most of them, and kept their requests.
        for _ in range(5):
            held = _connections_per_worker(url, 32)
            assert len(held) == 2, held
            assert min(held.values()) >= 4, held


def _connections_per_worker(url: str, count: int) -> dict[int, int]:
    """Open ``count`` connections before using any, then ask each which worker holds it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connections = [socket.create_connection((host, int(port)), timeout=30) for _ in range(count)]
    held: dict[int, int] = {}
    try:
        for conn in connections:
            conn.sendall(b"GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
            worker = json.loads(answer.split(b"\r\n\r\n", 1)[1])["worker"]
            held[worker] = held.get(worker, 0) + 1
    finally:
        for conn in connections:
            conn.close()
    return held


def _ready_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "fraudstream_api_requests"
    ]
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith("_total") and s.labels["route"] == "/health/ready"
    )


def test_every_worker_takes_a_newly_activated_rule_set_without_a_restart(
    api_world: World, tmp_path: Path
) -> None:
    held = wire(api_world.held_out)
    with scratch_env(api_world.settings) as scratch:
        settings = named(scratch, api_world.settings.mlflow.model_name)
        world = World(**{**api_world.__dict__, "settings": settings})
        with serve(world, 2, tmp_path, reload_interval=1) as url:
            before = _serving(url, 2, check="rules")
            assert len(before) == 2
            assert all("has no @active yet" in check for check in before.values()), before
            put = {"rule_set": blocking_rule_set("w1", [held["card_id"]]), "activated_by": "ana"}
            done = httpx.put(f"{url}/rules", json=put, headers=writer_headers(world), timeout=30)
            assert done.status_code == 200, done.text
            deadline = time.monotonic() + 120  # a poll each second on every worker
            after = _serving(url, 2, check="rules")
            while not all(c == "serving version w1 (@active)" for c in after.values()):
                assert time.monotonic() < deadline, after
                time.sleep(0.5)
                after = _serving(url, 2, check="rules")
            assert len(after) == 2
            for _ in range(8):  # whichever worker answers
                answer = httpx.post(
                    f"{url}/score", json=held, headers=reader_headers(world), timeout=30
                )
                assert answer.json()["outcome"] == "decline", answer.text
                assert answer.json()["rules_version"] == "w1"
