"""The streaming scorer on the real platform: Kafka, Spark with S3A checkpoints, MLflow, Postgres.

Two scorer runs (``fraudstream score`` subprocesses) keep the module within its time budget:

- a steady run (the ``steady`` fixture, one test per concern): a generated history with
  1,000 poison messages mixed in, then a new model promoted mid-stream. Checks feature
  and score parity with the offline builder, the online store, the metrics, dead
  letters, every sink, and hot reload without restart or gap;
- a crash run: the scorer is SIGKILLed mid-stream and restarted from its checkpoint,
  then a Kafka node is killed while more transactions arrive. Checks that every
  transaction is in Postgres exactly once, no prediction is missing, and that the
  card features still equal the offline builder's (no event counted twice in state).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import (
    consumer_config,
    delete_topic,
)
from fraudstream.adapters.lake import read_transactions
from fraudstream.adapters.object_store import Location
from fraudstream.adapters.online_store import OnlineStore
from fraudstream.adapters.postgres import connect, keeps_features, read_training_window
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import TxnEvent, from_record
from fraudstream.features.replay import build_features
from fraudstream.platform.process import ProcessRecord, alive
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.services.feed import StreamTopics, replay, send_poison
from fraudstream.settings import ScorerSettings, Settings, load_settings
from tests.integration.conftest import run_cli, scratch_env
from tests.integration.scoring_support import (
    PROMPT_LABELS,
    START,
    History,
    ScorerProcess,
    history,
    register_model,
    scored_count,
    scorer_args,
    scorer_env,
    scratch_topics,
    wait_until,
)

pytestmark = pytest.mark.timeout(3000)

POISON = 1_000


@pytest.fixture(scope="module")
def model_name() -> Iterator[str]:
    name = f"fraud-detector-scorer-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUDSTREAM_MLFLOW_MODEL_NAME", name)
        yield name


@pytest.fixture(scope="module")
def model_settings(model_name: str) -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def first(model_settings: Settings) -> tuple[History, str]:
    data = history(seed=21, labels=PROMPT_LABELS)
    return data, register_model(model_settings, data, threshold=0.3, seed=1)


@pytest.fixture
def made_topics(model_settings: Settings) -> Iterator[list[str]]:
    """Names of the topics a test created, deleted after it: every partition a broker
    holds adds to the work of each replica fetch, so leftover topics slow the cluster."""
    made: list[str] = []
    yield made
    for name in made:
        delete_topic(model_settings.kafka, name)


def _count_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 60
) -> dict[bytes, bytes]:
    """The topic's records by key (the last value of each) once ``expected`` keys arrived."""
    consumer = Consumer(consumer_config(settings.kafka, f"count-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    records: dict[bytes, bytes] = {}
    deadline = pd.Timestamp.now() + pd.Timedelta(seconds=timeout)
    try:
        # Distinct keys: a batch replayed after a crash publishes its records again.
        while len(records) < expected and pd.Timestamp.now() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            records[msg.key()] = msg.value()
    finally:
        consumer.close()
    return records


def _stored(settings: Settings, ids: list[str]) -> pd.DataFrame:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT transaction_id, score, threshold, is_alert, model_version,
                      feature_set_version, reason_codes, features, ingest_time, scored_at,
                      outcome, outcome_reason, fired_rules, rules_version
               FROM transactions_with_score WHERE transaction_id = ANY(%s)""",
            (ids,),
        )
        columns = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _parquet_rows(folder: Path) -> pd.DataFrame:
    """The scorer's Parquet dataset (``batch_id=…/date=…/part-*.parquet``), empty if none."""
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return pd.DataFrame({"transaction_id": []})
    return pq.read_table(folder).to_pandas()


def _assert_features_equal_offline(
    stored: pd.DataFrame, data: History, lean: bool = True
) -> pd.DataFrame:
    """Every stored feature vector is the offline builder's, labels included (to 1e-9).

    ``lean``: rows of ``transactions_with_score``, which keeps the vector of alerts and of a
    fixed sample only (``keeps_features``); the others must have none."""
    offline = build_features(data.transactions, data.labels).set_index("transaction_id")
    if lean:
        pairs = zip(stored["transaction_id"], stored["is_alert"], strict=True)
        kept = [keeps_features(t, bool(a)) for t, a in pairs]
        assert stored["features"].notna().tolist() == kept
        assert 0 < sum(kept) < len(kept)
        stored = stored[kept]
    names = feature_names()
    got = np.array(
        [[np.nan if row[n] is None else row[n] for n in names] for row in stored["features"]],
        dtype=np.float64,
    )
    expected = offline.loc[stored["transaction_id"], names].to_numpy(np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    return offline


def _assert_online_cards_equal_offline(settings: Settings, data: History) -> None:
    """A probe transaction one minute after each card's last one gets the same card features
    from the published state as from the offline replay's state (to 1e-9, like the parity)."""
    cards: dict[str, CardState] = {}
    ordered = data.transactions.sort_values(["event_time", "transaction_id"], kind="stable")
    for record in ordered.to_dict("records"):
        txn = from_record(record)
        cards[txn.card_id], _ = update_card(cards.get(txn.card_id), txn)
    expected = {}
    for card_id, state in cards.items():
        probe = TxnEvent("probe", state.times[-1] + 60.0, card_id, "merch-probe", 42.0,
                         None, None, None)  # fmt: skip
        expected[card_id] = (probe, update_card(copy.deepcopy(state), probe)[1])
    store = OnlineStore(settings.redis)

    def differing() -> list[str]:
        out = []
        for card_id, (probe, want) in expected.items():
            published = store.get(card_id, "-").card
            got = None if published is None else update_card(published, probe)[1]
            if got is None or not np.allclose(got, want, rtol=0, atol=1e-9, equal_nan=True):
                out.append(card_id)
        return out

    try:
        # The scorer publishes a batch's states just after storing its scores: the last
        # batch's states may land a moment after its rows.
        deadline = time.monotonic() + 60
        while (left := differing()) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert not left, f"{len(left)} cards differ from the offline replay, e.g. {left[:3]}"
    finally:
        store.close()


def _scorer_metrics() -> dict[str, float]:
    """The endpoint's samples, keyed by name and, for labelled ones, ``name{label=value}``."""
    url = f"http://127.0.0.1:{ScorerSettings().metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def _assert_progress_metrics(scorer: ScorerProcess) -> None:
    # Every micro-batch that read rows ran the handler once (its batch observation) and
    # left one progress report (its batch duration): once the stream is quiet the two counts
    # agree, so no report was missed and none was counted twice.
    def reported_once() -> bool:
        # The handler observes a batch after its tasks stored the rows: absent means not yet.
        values = _scorer_metrics()
        handled = values.get("fraudstream_scorer_stage_seconds_count{stage=batch}", 0)
        return values.get("fraudstream_scorer_batch_duration_seconds_count") == handled >= 1

    wait_until(reported_once, 60, "one progress report per micro-batch", scorer)
    values = _scorer_metrics()
    assert values["fraudstream_scored_total"] >= 1
    assert "fraudstream_scorer_processed_rows_per_second" in values


def _send_and_wait(
    settings: Settings,
    data: History,
    topics: StreamTopics,
    scorer: ScorerProcess,
    timeout: float,
    what: str,
    labels: bool = True,
) -> list[str]:
    """Replay ``data`` (its labels too when ``labels``) into a running scorer's topics and
    wait until every row is scored; the rows' ids."""
    replay(settings.kafka, data.table, data.label_table if labels else None, topics=topics)
    ids = data.transactions["transaction_id"].astype(str).tolist()
    wait_until(lambda: scored_count(settings, ids) == len(ids), timeout, what, scorer)
    return ids


def test_crash_and_a_lost_kafka_node_lose_and_duplicate_nothing(
    model_settings: Settings,
    model_name: str,
    first: tuple[History, str],
    platform: EmbeddedPlatform,
    made_topics: list[str],
    tmp_path: Path,
) -> None:
    settings = model_settings
    data = history(seed=23, labels=PROMPT_LABELS)
    topics = scratch_topics(settings, "crash")
    made_topics.extend(topics.values())
    # Several partitions read in capped micro-batches are cut at different event times: the
    # merchant order rule (a day of delay, well above the skew of 300-record batches of this
    # history in 6 partitions) keeps merchant features the offline builder's; the tail is
    # released after 15 s without input.
    sent = StreamTopics(transactions=topics["source"], labels=topics["labels"])
    replay(settings.kafka, data.table, data.label_table, topics=sent)
    ids = data.transactions["transaction_id"].astype(str).tolist()
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/test/{uuid.uuid4().hex[:10]}"
    # The per-card card-state layout here (the steady test above runs the default, packed),
    # and both stateful stages in 2 partitions, their 4 buckets' keys spread over them.
    args = scorer_args(
        topics,
        checkpoint,
        "--max-offsets-per-trigger",
        "300",
        "--card-state",
        "per-card",
        "--buckets",
        "4",
    )
    env = scorer_env(
        model_name,
        labels_topic=topics["labels"],
        FRAUDSTREAM_SCORER_MERCHANT_DELAY_S="86400",
        FRAUDSTREAM_SCORER_MERCHANT_RELEASE_S="15",
        # The replayed labels carry their transaction's keys: no links in the merchant state
        # (the steady test below keeps them, the default).
        FRAUDSTREAM_SCORER_LABEL_LINKS="false",
        FRAUDSTREAM_SPARK_SHUFFLE_PARTITIONS="2",
    )

    scorer = ScorerProcess(args, env, tmp_path / "first.log")
    try:
        wait_until(lambda: scored_count(settings, ids) >= 300, 900, "a few micro-batches", scorer)
    finally:
        scorer.kill()  # SIGKILL to the scorer and its Spark JVM: a crash mid-stream
    assert scored_count(settings, ids) < len(ids), "the crash must interrupt the stream"
    # The keys the buckets' state is stored under were recorded with the checkpoint.
    assert Location(checkpoint, settings.s3).list("bucket-spread") == ["bucket-spread/2"]

    scorer = ScorerProcess(args, env, tmp_path / "second.log")
    victim = platform.kafka_nodes[2]
    try:
        wait_until(lambda: scored_count(settings, ids) == len(ids), 600, "the restart", scorer)
        record = ProcessRecord.load(platform.run_dir, victim.name)
        assert record is not None
        assert alive(record)
        os.killpg(record.pid, signal.SIGKILL)
        # After the first history in event time, as a live stream continues.
        more = history(seed=24, start=START + timedelta(days=5), labels=PROMPT_LABELS)
        more_ids = _send_and_wait(
            settings, more, sent, scorer, 600, "the rows sent while a Kafka node was down"
        )
    finally:
        scorer.proc.send_signal(signal.SIGTERM)
        scorer.wait(120)
        status = json.loads(run_cli("platform", "up", "--json").stdout)
        assert status["healthy"], status

    with connect(settings.postgres) as conn, conn.cursor() as cur:
        for table in ("transactions_raw", "transactions_with_score"):
            cur.execute(
                f"SELECT count(*), count(DISTINCT transaction_id) FROM {table} "
                "WHERE transaction_id = ANY(%s)",
                (ids + more_ids,),
            )
            assert cur.fetchone() == (len(ids) + len(more_ids),) * 2, table
    # No event counted twice in any card's or merchant's state, no label lost or applied
    # twice: features still equal the offline builder's.
    _assert_features_equal_offline(_stored(settings, ids), data)
    _assert_features_equal_offline(_stored(settings, more_ids), more)
    predictions = _count_topic(settings, topics["predictions"], len(ids) + len(more_ids), 120)
    assert {k.decode() for k in predictions} == set(ids) | set(more_ids)


def _with_invalid_rows(table: pa.Table, bad: dict[int, tuple[str, object]]) -> pa.Table:
    """``table`` with the value at each row position of ``bad`` replaced: (field, value)."""
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for i, (name, value) in bad.items():
        columns[name][i] = value
    return pa.table(columns, schema=table.schema)


def _parity_rules(version: str, watched: list[str]) -> dict[str, object]:
    """A rule set reading a feature, transaction fields, a list and the score, with every
    outcome, so that each tier of the precedence decides some row of the history."""
    return {
        "version": version,
        "lists": {"watched_merchants": watched},
        "rules": [
            {"name": "watched_merchant", "condition": "merchant_id in watched_merchants",
             "outcome": "decline"},
            {"name": "busy_card", "condition": "card_count_1h >= 3", "outcome": "review",
             "priority": 5},
            {"name": "large_ecom", "condition": "channel == 'ecom' and amount > 150",
             "outcome": "review", "priority": 10},
            {"name": "tiny_and_quiet", "condition": "score < 0.05 and amount < 5",
             "outcome": "approve"},
        ],
    }  # fmt: skip


def _decisions(frame: pd.DataFrame) -> pd.DataFrame:
    """outcome, reason, fired rules (a tuple) and version, as score-file writes them."""
    return pd.DataFrame(
        {
            "outcome": frame["outcome"],
            "reason": frame["reason"].fillna(""),
            "fired_rules": frame["fired_rules"].map(lambda f: () if f is None else tuple(f)),
            "rules_version": frame["rules_version"],
        },
        index=frame.index,
    )


def test_the_stream_and_score_file_agree_on_a_file_with_invalid_rows(
    model_settings: Settings,
    first: tuple[History, str],
    made_topics: list[str],
    tmp_path: Path,
) -> None:
    """One file, two paths: replayed through the stream (invalid rows sent, so the stream
    dead-letters them) and scored with `score-file` (which excludes them by the same policy).
    Both score the same ids, refuse the same ids for the same reasons, and give the same
    scores and the same decisions of the active rule set: the replay sends the whole history
    before the scorer starts, so the stream sees every row's history in full. Then another
    set is activated mid-stream: the later rows carry it, without a restart.

    A database of its own: the active rule set is the database's."""
    with scratch_env(model_settings) as settings:
        _stream_and_score_file_agree(settings, made_topics, tmp_path)


def _stream_and_score_file_agree(
    settings: Settings, made_topics: list[str], tmp_path: Path
) -> None:
    data = history(seed=25)
    future = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    bad = {
        7: ("amount", -12.5, "amount_negative"),
        70: ("currency", "XXY", "unknown_currency"),
        140: ("amount", 3.141, "amount_precision"),
        210: ("amount", 5e7, "amount_absurd"),
        280: ("event_time", future.to_pydatetime(), "event_time_in_future"),
        350: ("channel", "carrier-pigeon", "schema_violation"),
        420: ("amount", -0.01, "amount_negative"),
    }
    table = _with_invalid_rows(data.table, {i: (f, v) for i, (f, v, _) in bad.items()})
    ids = table.column("transaction_id").to_pylist()
    refused = {ids[i]: reason for i, (*_, reason) in bad.items()}
    zero = {t for t, a in zip(ids, table.column("amount").to_pylist(), strict=True) if a == 0}
    assert zero, "the generated history holds zero-amount authorisations"
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path)
    rules = _parity_rules("parity-1", sorted(set(data.transactions["merchant_id"]))[:3])
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules))
    run_cli("rules", "activate", str(rules_file), "--by", "test")

    # The offline path: the champion scores the file; the refused rows are excluded.
    out = tmp_path / "scores.parquet"
    summary = json.loads(
        run_cli(
            "score-file", "--model", "champion", "--transactions", str(path),
            "--out", str(out), "--rules", str(rules_file), "--json",
        ).stdout.splitlines()[-1]
    )  # fmt: skip
    offline = pd.read_parquet(out).set_index("transaction_id")
    assert summary["input"]["rows_excluded"] == len(bad)
    for reason in set(refused.values()):
        expected = sum(1 for r in refused.values() if r == reason)
        assert summary["input"][f"rows_excluded_{reason}"] == expected, reason

    # The streaming path: the same file replayed with its invalid rows sent.
    topics = scratch_topics(settings, "parity")
    made_topics.extend(topics.values())
    run_cli("replay", "--transactions", str(path), "--topic", topics["source"], "--send-invalid")
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/test/{uuid.uuid4().hex[:10]}"
    scorer = ScorerProcess(
        scorer_args(topics, checkpoint, "--no-parquet", "--reload-interval", "2"),
        scorer_env(settings.mlflow.model_name, labels_topic=topics["labels"]),
        tmp_path / "scorer.log",
    )
    try:
        wait_until(
            lambda: scored_count(settings, ids) == len(offline), 600, "the valid rows", scorer
        )
        letters = _count_topic(settings, topics["dead"], len(bad)).values()
        published = _count_topic(settings, topics["predictions"], len(offline))
        # Another set activated mid-stream: the rows after it carry it, no restart.
        rules_file.write_text(yaml.safe_dump({**rules, "version": "parity-2"}))
        run_cli("rules", "activate", str(rules_file), "--by", "test")
        wait_until(
            lambda: "@active: now serving version parity-2" in scorer.output(),
            120,
            "the scorer to pick up rule set parity-2",
            scorer,
        )
        later = history(seed=26, days=1, customers=20)
        source = StreamTopics(transactions=topics["source"])
        later_ids = _send_and_wait(
            settings, later, source, scorer, 300, "the later rows", labels=False
        )
        assert scorer.alive()
    finally:
        scorer.proc.send_signal(signal.SIGTERM)
        scorer.wait(120)
    stored = _stored(settings, ids).set_index("transaction_id")

    # The same ids scored, the same ids refused for the same reasons, the same scores.
    assert set(stored.index) == set(offline.index) == set(ids) - set(refused)
    assert zero <= set(stored.index)
    dead = {json.loads(json.loads(v)["payload"])["transaction_id"]: json.loads(v)["reason"]
            for v in letters}  # fmt: skip
    assert dead == refused
    assert set(stored["model_version"]) == {str(summary["version"])}
    np.testing.assert_allclose(
        stored.loc[offline.index, "score"].to_numpy(np.float64),
        offline["score"].to_numpy(np.float64),
        rtol=0,
        atol=1e-9,
    )

    # The same decisions: PostgreSQL's rows and the published records as score-file's.
    want = _decisions(offline)
    got = _decisions(stored.rename(columns={"outcome_reason": "reason"})).loc[want.index]
    pd.testing.assert_frame_equal(got, want)
    records = {k.decode(): json.loads(v) for k, v in published.items()}
    sent = pd.DataFrame.from_dict(records, orient="index").loc[want.index]
    pd.testing.assert_frame_equal(_decisions(sent), want)
    # Every tier decided some row, and every rule fired, so the comparison means something.
    assert set(want["outcome"]) == {"approve", "review", "decline"}
    assert {"model", "watched_merchant", "busy_card", "tiny_and_quiet"} <= set(want["reason"])
    assert set().union(*want["fired_rules"]) == {r["name"] for r in rules["rules"]}
    assert set(want["rules_version"]) == {"parity-1"}
    assert set(_stored(settings, later_ids)["rules_version"]) == {"parity-2"}


# The steady run's tests come last: its scorer runs until the module ends (the fixture's
# teardown), and a later test's scorer in this module would meet its metrics port.


@dataclass
class SteadyRun:
    """One scorer over a generated history with poison mixed in, shared by the tests below
    (one scorer run keeps the module in its time budget); each test checks one concern.
    ``later_ids``: the rows scored by the version the hot-reload test promoted, if it ran."""

    settings: Settings
    data: History
    version: str
    topics: dict[str, str]
    ids: list[str]
    stored: pd.DataFrame
    scorer: ScorerProcess
    parquet: Path
    poison: set[str]
    """The dead-letter keys (source topic/partition/offset) of the poison records sent."""
    later: History | None = None
    later_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def steady(
    model_settings: Settings,
    model_name: str,
    first: tuple[History, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SteadyRun]:
    data, version = first
    settings = model_settings
    tmp_path = tmp_path_factory.mktemp("steady")
    topics = scratch_topics(settings, "steady")
    replay(
        settings.kafka,
        data.table,
        data.label_table,
        topics=StreamTopics(transactions=topics["source"], labels=topics["labels"]),
    )
    poison = send_poison(settings.kafka, topics["source"], POISON)
    ids = data.transactions["transaction_id"].astype(str).tolist()
    checkpoint = f"s3a://{settings.s3.checkpoint_bucket}/test/{uuid.uuid4().hex[:10]}"
    parquet = tmp_path / "scored"
    scorer = ScorerProcess(
        scorer_args(topics, checkpoint, "--reload-interval", "2", "--parquet", str(parquet)),
        scorer_env(model_name, labels_topic=topics["labels"]),
        tmp_path / "scorer.log",
    )
    try:
        wait_until(lambda: scored_count(settings, ids) == len(ids), 600, "the history", scorer)
        stored = _stored(settings, ids)
        yield SteadyRun(settings, data, version, topics, ids, stored, scorer, parquet, poison)
    finally:
        scorer.proc.send_signal(signal.SIGTERM)
        scorer.wait(120)
        for name in topics.values():
            delete_topic(settings.kafka, name)


def test_steady_features_and_scores_equal_the_offline_path(steady: SteadyRun) -> None:
    stored, settings = steady.stored, steady.settings
    assert set(stored["model_version"]) == {steady.version}
    assert set(stored["feature_set_version"]) == {FEATURE_SET_VERSION}
    # Identical feature vectors and scores to the offline path, the labels' merchant risks
    # included (labels from the topic, linked to merchants in state).
    offline = _assert_features_equal_offline(stored, steady.data)
    # (the history's 4 days leave the mature risks NaN: their values are covered by
    # tests/unit/test_scoring.py, which runs the same stage code over 20 days)
    risks = [n for n in feature_names() if n.startswith("merchant_fraud_risk")]
    assert offline[risks].to_numpy().max() > 0
    loaded = registry.load_model(settings, steady.version)
    expected = loaded.model.predict_proba(
        offline.loc[stored["transaction_id"], feature_names()].to_numpy(np.float64)
    )[:, 1]
    np.testing.assert_allclose(stored["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert list(stored["is_alert"]) == list(stored["score"] >= 0.3)
    # Where no rule fires, the model decides: review at its threshold, approve under it.
    quiet = stored["fired_rules"].isna()
    assert quiet.all(), "no active set of this database fires on the history"
    assert list(stored["outcome"]) == ["review" if a else "approve" for a in stored["is_alert"]]
    assert set(stored.loc[stored["is_alert"], "outcome_reason"]) == {"model"}
    assert stored.loc[~stored["is_alert"], "outcome_reason"].isna().all()
    assert stored["reason_codes"].map(len).max() == 3
    assert (stored["scored_at"] >= stored["ingest_time"]).all()


def test_steady_online_store_holds_the_offline_card_states(steady: SteadyRun) -> None:
    # Each card's state after its last transaction, exactly as the offline replay leaves
    # it: what POST /score computes its features from.
    _assert_online_cards_equal_offline(steady.settings, steady.data)


def test_steady_progress_reaches_the_metrics_once_per_batch(steady: SteadyRun) -> None:
    _assert_progress_metrics(steady.scorer)
    # The replayed labels carry their transaction's keys, and the merchant stage counted them
    # (a task run twice counts twice, so at least).
    values = _scorer_metrics()
    assert values["fraudstream_scorer_labels_total{keys=keyed}"] >= len(steady.data.labels) > 0
    assert "fraudstream_scorer_labels_total{keys=keyless}" not in values


def test_steady_poison_is_dead_lettered_and_every_score_published(steady: SteadyRun) -> None:
    # Every poison message dead-lettered, keyed by its source offset; the query kept going.
    settings, topics, stored = steady.settings, steady.topics, steady.stored
    dead = _count_topic(settings, topics["dead"], POISON)
    assert {k.decode() for k in dead} == steady.poison
    predictions = _count_topic(settings, topics["predictions"], len(steady.ids))
    assert {k.decode() for k in predictions} == set(steady.ids)
    alerts = _count_topic(settings, topics["alerts"], int(stored["is_alert"].sum()))
    assert {k.decode() for k in alerts} == set(stored.loc[stored["is_alert"], "transaction_id"])
    assert steady.scorer.alive()


def test_steady_hot_reload_serves_a_promoted_version_without_a_restart(
    steady: SteadyRun,
) -> None:
    # A new version promoted mid-stream: later rows carry it, none is missing.
    settings, scorer = steady.settings, steady.scorer
    later = history(seed=22)
    new_version = register_model(settings, later, threshold=0.4, seed=2)
    wait_until(
        lambda: "now serving version " + new_version in scorer.output(),
        180,
        "the scorer to load the promoted version",
        scorer,
    )
    source = StreamTopics(transactions=steady.topics["source"])
    later_ids = _send_and_wait(settings, later, source, scorer, 300, "the later rows", False)
    steady.later, steady.later_ids = later, later_ids
    assert set(_stored(settings, later_ids)["model_version"]) == {new_version}
    assert scorer.alive(), "no restart: the same process served both versions"


def test_steady_parquet_and_the_lake_hold_every_scored_row(steady: SteadyRun) -> None:
    # Parquet, through Spark's writer: every scored row once, with its score and features
    # (the hot-reload test's later rows too, when it ran before this one).
    settings, stored, parquet = steady.settings, steady.stored, steady.parquet
    ids, later_ids = steady.ids, steady.later_ids
    wait_until(lambda: len(_parquet_rows(parquet)) == len(ids) + len(later_ids), 120, "Parquet")
    files = _parquet_rows(parquet).set_index("transaction_id")
    assert set(files.index) == set(ids) | set(later_ids)
    np.testing.assert_allclose(
        files.loc[stored["transaction_id"], "score"].to_numpy(), stored["score"].to_numpy()
    )
    assert files.loc[stored["transaction_id"], "outcome"].tolist() == stored["outcome"].tolist()
    _assert_features_equal_offline(
        stored.assign(features=files.loc[stored["transaction_id"], feature_names()]
                      .to_dict("records")),
        steady.data,
        lean=False,
    )  # fmt: skip

    # The lake holds every transaction as PostgreSQL does: the same training window.
    every = ids + later_ids
    frames = [steady.data.transactions] + (
        [steady.later.transactions] if steady.later is not None else []
    )
    start = min(f["event_time"].min() for f in frames)
    end = max(f["event_time"].max() for f in frames) + timedelta(seconds=1)
    from_pg, _ = read_training_window(settings.postgres, start, end, end)
    from_lake = read_transactions(Location(str(parquet), settings.s3), start, end)
    lake_rows = from_lake[from_lake["transaction_id"].isin(every)].reset_index(drop=True)
    pg_rows = from_pg[from_pg["transaction_id"].isin(every)].reset_index(drop=True)
    # Other tests' rows share PostgreSQL's window; where one of them lacks an optional
    # integer (schema_version), pandas holds the whole column as floats. Compared in the
    # lake's dtypes: a value of these rows that differs, or is missing, still fails.
    pd.testing.assert_frame_equal(lake_rows, pg_rows.astype(lake_rows.dtypes.to_dict()))
    assert len(lake_rows) == len(every)
