"""POST /score latency and throughput, against the naive path measured in the same run.

Needs the platform up with a champion (`fraudstream platform up`, `train`, `promote`).
Publishes the states of a small generated history to the online store, then measures:

- in-process: the API's scoring path (one MGET from Redis, features on decoded copies,
  ``inplace_predict`` + ``pred_contribs``) against the naive path (same features, a
  one-row pandas DataFrame and ``predict_proba``), p50/p99 and the ratio;
- over HTTP: the real API under uvicorn, with N client threads (keep-alive), p50/p99 and
  requests/s.

Usage: .venv/bin/python bench/api.py [--requests 2000] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd
import uvicorn

from fraudstream.adapters import registry
from fraudstream.adapters.online_store import OnlineStore, publish_states
from fraudstream.api.app import create_app
from fraudstream.api.scoring import Scorer, features_on
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import feature_names
from fraudstream.features.events import from_record
from fraudstream.features.merchant import MerchantState, update_merchant
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.scoring.model import ScoringModel
from fraudstream.settings import load_settings


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    settings = load_settings()
    loaded = registry.load_model(settings, "champion")
    scorer = Scorer(ScoringModel.checked(loaded))
    data = generate(
        GeneratorConfig(seed=3, start=datetime(2026, 3, 1, tzinfo=UTC), days=4, customers=300),
        id_prefix="bench-api",
    )
    txns = data.transactions.to_pandas().sort_values(["event_time", "transaction_id"])
    records = txns.to_dict("records")
    history, probes = records[:-200], records[-200:]
    # The states the stream would publish, from the functions it updates them with.
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for record in history:
        txn = from_record(record)
        cards[txn.card_id], _ = update_card(cards.get(txn.card_id), txn)
        merchants[txn.merchant_id], _ = update_merchant(merchants.get(txn.merchant_id), txn)
    store = OnlineStore(settings.redis)
    publish_states(store, cards, merchants)
    events = [from_record(r) for r in probes]
    names = feature_names()

    fast, naive = [], []
    for i in range(args.requests):
        txn = events[i % len(events)]
        t0 = time.perf_counter()
        scorer.decide(txn, store.get(txn.card_id, txn.merchant_id))
        t1 = time.perf_counter()
        values = features_on(txn, store.get(txn.card_id, txn.merchant_id))
        frame = pd.DataFrame([values], columns=names)
        loaded.model.predict_proba(frame)
        t2 = time.perf_counter()
        fast.append(t1 - t0)
        naive.append(t2 - t1)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min), {os.cpu_count()} cores")
    print(f"in-process  /score path p50 {pct(fast, 50):.3f} ms  p99 {pct(fast, 99):.3f} ms")
    print(
        f"naive (DataFrame + predict_proba, no reasons) p50 {pct(naive, 50):.3f} ms  "
        f"p99 {pct(naive, 99):.3f} ms"
    )
    print(f"ratio naive/api p50 {statistics.median(naive) / statistics.median(fast):.2f}x")

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.api.port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    bodies = [
        {
            **{k: v for k, v in r.items() if v is not None and v == v},
            "event_time": r["event_time"].isoformat().replace("+00:00", "Z"),
        }
        for r in probes
    ]
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = args.requests // args.clients

    def client(offset: int) -> None:
        mine = []
        with httpx.Client(base_url=settings.api.url) as http:
            for i in range(per_client):
                t0 = time.perf_counter()
                response = http.post("/score", json=bodies[(offset + i) % len(bodies)])
                mine.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c * 37,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(
        f"HTTP ({args.clients} client threads, same process as the server) "
        f"p50 {pct(latencies, 50):.2f} ms  p99 {pct(latencies, 99):.2f} ms  "
        f"{len(latencies) / elapsed:.0f} requests/s"
    )
    server.should_exit = True


if __name__ == "__main__":
    main()
