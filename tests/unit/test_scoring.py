"""The scorer's pure parts: the card-bucket stage, the merchant book, scoring and reload.

The streaming path must give the offline builder's features: here the stage and the
book run over a generated history split into arbitrary micro-batches and buckets,
with states round-tripped through bytes between batches as Spark stores them.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
from xgboost import XGBClassifier

from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.features.card import CardState
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import LabelEvent
from fraudstream.features.replay import build_features, label_events
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.generator.config import LabelConfig
from fraudstream.schema import Transaction
from fraudstream.schema.tables import wire_records
from fraudstream.scoring.batch import Accepted, accepted_from, assemble
from fraudstream.scoring.cards import (
    BucketState,
    DecodedCards,
    LoadedCards,
    Message,
    process_bucket,
)
from fraudstream.scoring.merchant_stage import parse_label
from fraudstream.scoring.merchants import (
    BucketHeader,
    LabelIn,
    MerchantBucket,
    MerchantTxn,
    Released,
)
from fraudstream.scoring.model import ScoringModel, score, top_reasons
from fraudstream.scoring.reload import ModelHolder
from fraudstream.scoring.rows import TRANSACTION_COLUMNS, transaction_from, transaction_values
from fraudstream.validation import TransactionValidator

NOW = datetime(2026, 11, 1, tzinfo=UTC)
START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, pd.DataFrame, list[bytes]]:
    # Analysts find most fraud within hours, so labels reach later transactions of the history;
    # 20 days, so the mature merchant risks (windows ending 14 days back) hold values too.
    labels = LabelConfig(analyst_share=0.9, analyst_median_days=0.3)
    config = GeneratorConfig(
        seed=5, start=START, days=20, customers=80, merchants=300, fraud_rate=0.05, labels=labels
    )
    data = generate(config)
    values = [value for _, _, value in wire_records(data.transactions, "transaction")]
    return data.transactions.to_pandas(), data.labels.to_pandas(), values


def _messages(values: list[bytes]) -> list[Message]:
    return [Message(v, None, "transactions", i % 3, i, 0) for i, v in enumerate(values)]


def _partitioned(values: list[bytes], partitions: int, cap: int, seed: int) -> list[list[Message]]:
    """Micro-batches as Spark's Kafka source cuts a topic keyed by card into ``partitions``
    (each partition in the producer's event-time order): every batch takes about ``cap``
    records, shared between the partitions in proportion to what each has left (Spark's
    rule for ``maxOffsetsPerTrigger``), jittered by half, so partitions are cut at
    different event times."""
    rng = random.Random(seed)
    queues: list[list[Message]] = [[] for _ in range(partitions)]
    for value in values:
        card = json.loads(value).get("card_id", "")
        p = zlib.crc32(card.encode()) % partitions
        queues[p].append(Message(value, None, "transactions", p, len(queues[p]), 0))
    batches = []
    while any(queues):
        weights = [len(q) * (0.5 + rng.random()) for q in queues]
        shares = [max(1, round(cap * w / sum(weights))) for w in weights]
        batch = []
        for queue, share in zip(queues, shares, strict=True):
            batch.extend(queue[:share])
            del queue[:share]
        batches.append(batch)
    return batches


@dataclass
class _MerchantStore:
    """The merchant stage's state as Spark keeps it between batches: bytes per key."""

    merchants: dict[tuple[int, str], bytes] = field(default_factory=dict)
    links: dict[tuple[int, str], tuple[str, float]] = field(default_factory=dict)
    headers: dict[int, bytes] = field(default_factory=dict)
    keep_links: bool = True
    link_reads: int = 0

    def _link(self, bucket_id: int, transaction_id: str) -> tuple[str, float] | None:
        self.link_reads += 1
        return self.links.get((bucket_id, transaction_id))

    def step(
        self, bucket_id: int, txns: list[MerchantTxn], labels: list[LabelIn], delay_s: float,
        release_all: bool = False,
    ) -> list[Released]:  # fmt: skip
        bucket = MerchantBucket(
            lambda m: self.merchants.get((bucket_id, m)),
            lambda t: self._link(bucket_id, t),
            BucketHeader.from_bytes(self.headers.get(bucket_id)),
            keep_links=self.keep_links,
        )
        out = bucket.step(txns, labels, delay_s, release_all)
        for merchant_id, blob in bucket.updated().items():
            self.merchants[(bucket_id, merchant_id)] = blob
        for txn_id, link in bucket.links.items() if self.keep_links else ():
            self.links[(bucket_id, txn_id)] = link
        self.headers[bucket_id] = bucket.header.to_bytes()
        return out


def _stream(
    values: list[bytes],
    buckets: int,
    batch_size: int,
    labels: list[LabelEvent] | None = None,
    layout: str = "packed",
    decoded: DecodedCards | None = None,
    fail_every: int = 0,
    labels_waiting: bool = False,
    batches: list[list[Message]] | None = None,
    delay_s: float = 0.0,
    labels_late: bool = False,
    labels_lag: int = 0,
    keyed: bool = False,
    merchants: _MerchantStore | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Run the card and merchant stages over micro-batches; features by transaction id and
    the late count.

    States go through bytes between batches as Spark keeps them: a card bucket's packed
    value, or one value per card (``per-card``); each merchant bucket's merchants, links
    and header. ``decoded``: the worker's cache of decoded card states. ``fail_every``:
    every n-th batch first runs a card-stage attempt whose states are encoded but never
    stored (a task that failed before Spark committed), then again. Labels reach every
    merchant bucket (as from the labels topic): with the batch holding their transaction,
    or all in the first batch (``labels_waiting``: they wait for their transaction), or as
    late as the order rule allows (``labels_late``: in the first batch whose newest event
    is at or after their ``label_time``; ``labels_lag`` batches later still: the stream
    has passed their time when they arrive). ``batches``: the micro-batches (default: the
    history in order, ``batch_size`` at a time); the release timer fires at the end.
    ``keyed``: labels carry their transaction's merchant and time, and reach only their
    merchant's bucket. ``merchants``: the merchant state (to run without links, or look
    at it afterwards).
    """
    cache = DecodedCards(capacity=0) if decoded is None else decoded
    validator = TransactionValidator()
    stored: dict[int, bytes] = {}  # each card bucket as Spark's state keeps it
    per_card: dict[str, bytes] = {}
    merchants = _MerchantStore() if merchants is None else merchants
    if batches is None:
        messages = _messages(values)
        batches = [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]
    queued = sorted(labels or [], key=lambda lb: lb.label_time)
    due: list[list[LabelEvent]] = []
    out: dict[str, np.ndarray] = {}
    late = 0
    accepted: dict[str, Accepted] = {}  # what the held transactions' payloads carry
    for number, chunk in enumerate(batches):
        by_bucket: dict[int, list[Message]] = {}
        for m in chunk:
            card = json.loads(m.value or b"{}").get("card_id", "")
            by_bucket.setdefault(hash(card) % buckets, []).append(m)
        if fail_every and number % fail_every == 0:
            for bucket_id, msgs in by_bucket.items():
                attempt = _bucket_of(layout, bucket_id, stored, per_card, cache)
                process_bucket(attempt, msgs, validator, NOW)
                attempt.updated() if isinstance(attempt, LoadedCards) else attempt.to_bytes()
        events = []
        for bucket_id, msgs in by_bucket.items():
            bucket = _bucket_of(layout, bucket_id, stored, per_card, cache)
            for row in process_bucket(bucket, msgs, validator, NOW):
                assert row.reason is None, row.dead_letter
                assert row.txn is not None
                accepted[row.txn.transaction_id] = accepted_from(
                    row.txn,
                    row.card_features,
                    0,
                    0,
                    0,
                    row.late,  # type: ignore[arg-type]
                )
                events.append(accepted[row.txn.transaction_id].event)
            if isinstance(bucket, LoadedCards):
                per_card.update(bucket.updated())
            else:
                stored[bucket_id] = bucket.to_bytes()
        if labels_waiting:
            arriving, queued = (queued, []) if number == 0 else ([], [])
        elif labels_late:
            newest = max((e.time for e in events), default=float("-inf"))
            due.append([lb for lb in queued if lb.label_time <= newest])
            queued = [lb for lb in queued if lb.label_time > newest]
            arriving = due.pop(0) if len(due) > labels_lag else []
        else:
            ids = {e.transaction_id for e in events}
            arriving = [lb for lb in queued if lb.transaction_id in ids]
        by_merchant: dict[int, list[MerchantTxn]] = {b: [] for b in range(buckets)}
        for e in events:
            by_merchant[zlib.crc32(e.merchant_id.encode()) % buckets].append(
                MerchantTxn(e.transaction_id, e.merchant_id, e.time)
            )
        verdicts: dict[int, list[LabelIn]] = {b: [] for b in range(buckets)}
        for lb in arriving:
            if keyed:
                bucket_of_label = zlib.crc32(lb.merchant_id.encode()) % buckets
                verdicts[bucket_of_label].append(
                    LabelIn(*_verdict(lb), lb.merchant_id, lb.txn_time)
                )
            else:
                for b in range(buckets):
                    verdicts[b].append(LabelIn(*_verdict(lb)))
        last = number == len(batches) - 1
        for bucket_id, txns in by_merchant.items():
            released = merchants.step(bucket_id, txns, verdicts[bucket_id], delay_s)
            if last:
                released += merchants.step(bucket_id, [], [], delay_s, release_all=True)
            rows = [accepted[r.txn.transaction_id] for r in released]
            matrix, flags = assemble(
                rows, [r.features for r in released], [r.late for r in released]
            )
            late += sum(flags)
            for row, vector in zip(rows, matrix, strict=True):
                out[row.txn.transaction_id] = vector
    return out, late


def _verdict(label: LabelEvent) -> tuple[str, float, bool]:
    return label.transaction_id, label.label_time, label.is_fraud


def _bucket_of(
    layout: str,
    bucket_id: int,
    stored: dict[int, bytes],
    per_card: dict[str, bytes],
    decoded: DecodedCards,
) -> BucketState | LoadedCards:
    if layout == "per-card":
        return LoadedCards(per_card.get, decoded)
    return BucketState.from_bytes(stored.get(bucket_id, BucketState().to_bytes()), decoded)


def _assert_parity(offline: pd.DataFrame, streamed: dict[str, np.ndarray]) -> None:
    assert len(streamed) == len(offline)
    expected = offline[feature_names()].to_numpy(np.float64)
    got = np.vstack([streamed[t] for t in offline["transaction_id"]])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("layout", ["packed", "per-card"])
@pytest.mark.parametrize(("buckets", "batch_size"), [(1, 10_000), (7, 97), (64, 500)])
def test_stream_features_equal_the_offline_builder(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
    buckets: int,
    batch_size: int,
    layout: str,
) -> None:
    txns, _, values = generated
    streamed, late = _stream(values, buckets, batch_size, layout=layout)
    assert late == 0
    _assert_parity(build_features(txns), streamed)


@pytest.mark.parametrize("layout", ["packed", "per-card"])
def test_kept_decoded_states_give_the_offline_features_through_failed_attempts(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]], layout: str
) -> None:
    """A worker's kept states serve later batches; an attempt whose state Spark never
    stored (every third batch here) leaves no kept state that a replay could take."""
    txns, _, values = generated
    decoded = DecodedCards()
    streamed, late = _stream(values, 3, 150, layout=layout, decoded=decoded, fail_every=3)
    assert late == 0
    _assert_parity(build_features(txns), streamed)
    assert decoded.hits > 0, "later batches must take kept states"
    assert decoded.misses > 0, "replays after a failed attempt must decode the stored bytes"


def _card_bytes(values: list[bytes], count: int) -> tuple[str, list[bytes], CardState]:
    """The first card's stored bytes after each of its first ``count`` transactions, and
    its state after the last (decoded from those bytes)."""
    card, mine = _one_cards_first_three(values)
    bucket, blobs = BucketState(), []
    for value in mine[:count]:
        process_bucket(bucket, _messages([value]), TransactionValidator(), NOW)
        blobs.append(BucketState.from_bytes(bucket.to_bytes()).blobs[card])
    state = BucketState.from_bytes(bucket.to_bytes()).card(card)
    assert state is not None
    return card, blobs, state


def test_a_kept_state_is_handed_out_only_for_its_own_bytes_and_only_once(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    card, (after_one, after_two), kept = _card_bytes(generated[2], 2)
    decoded = DecodedCards()
    decoded.keep(card, after_two, kept)

    # Other bytes (an older checkpoint, a replay after a failed attempt) are decoded.
    state = decoded.decode(card, after_one)
    assert state is not kept
    assert len(state.times) == 1
    assert (decoded.hits, decoded.misses) == (0, 1)
    # The kept state went with that lookup, so its own bytes are decoded now too.
    again = decoded.decode(card, after_two)
    assert again is not kept
    assert again == kept
    assert (decoded.hits, decoded.misses) == (0, 2)
    decoded.keep(card, after_two, again)
    assert decoded.decode(card, after_two) is again
    assert (decoded.hits, decoded.misses) == (1, 2)


def test_decoded_states_are_bounded_least_recently_used_first(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    _, (blob,), state = _card_bytes(generated[2], 1)
    decoded = DecodedCards(capacity=2)
    for name in ("a", "b", "a", "c"):
        decoded.keep(name, blob, state)
    assert len(decoded) == 2
    assert decoded.decode("b", blob) is not state, "b, the least recently kept, left first"
    assert decoded.decode("a", blob) is state
    assert decoded.decode("c", blob) is state
    decoded.resize(0)
    assert len(decoded) == 0


def test_labels_known_in_time_give_the_offline_merchant_risk(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    """With every label known when its transaction is seen, the book equals the builder."""
    txns, labels, values = generated
    events = label_events(txns, labels)
    assert any(e.is_fraud for e in events)
    streamed, _ = _stream(values, 5, 200, labels=events)
    offline = build_features(txns, labels)
    _assert_parity(offline, streamed)
    for kind in ("merchant_fraud_risk", "merchant_mature_fraud_risk"):
        risk = offline[[c for c in feature_names() if c.startswith(kind)]].to_numpy()
        assert np.nanmax(risk) > 0, f"the history must exercise the label path of {kind}"


def test_labels_read_before_their_transaction_resolve_when_the_stage_meets_it(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    """A label ingested before its transaction reached the scorer waits in ``unresolved``;
    the merchant stage resolves it with the batch holding the transaction: same risk."""
    txns, labels, values = generated
    streamed, _ = _stream(values, 5, 200, labels=label_events(txns, labels), labels_waiting=True)
    _assert_parity(build_features(txns, labels), streamed)


MERCHANT_COLUMNS = [i for i, n in enumerate(feature_names()) if n.startswith("merchant_")]


@pytest.mark.parametrize(("partitions", "cap", "buckets"), [(3, 40, 2), (6, 25, 5)])
def test_the_order_rule_keeps_merchants_exact_across_partitions_and_capped_batches(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
    partitions: int,
    cap: int,
    buckets: int,
) -> None:
    """Partitions cut at different event times by capped micro-batches, labels as late as
    the order rule allows: with a delay above the partitions' skew every feature is the
    offline builder's (over these 20 days the skew grows past one day: 3 days hold it).
    Without it, merchants' transactions arrive out of order and their features differ (so
    the parity above is the rule's doing)."""
    txns, labels, values = generated
    verdicts = label_events(txns, labels)
    batches = _partitioned(values, partitions, cap, seed=partitions)
    offline = build_features(txns, labels)
    streamed, late = _stream(
        values, buckets, 0, labels=verdicts, batches=batches, delay_s=3 * 86_400.0,
        labels_late=True,
    )  # fmt: skip
    assert late == 0
    _assert_parity(offline, streamed)

    loose, late = _stream(values, buckets, 0, labels=verdicts, batches=batches, labels_late=True)
    expected = offline[feature_names()].to_numpy(np.float64)
    got = np.vstack([loose[t] for t in offline["transaction_id"]])
    differing = ~np.isclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert late > 0
    assert differing.any()
    assert not np.delete(differing, MERCHANT_COLUMNS, axis=1).any(), "cards are exact anyway"


def test_labels_that_arrive_after_the_stream_passed_their_time_move_only_merchant_risk(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    """Labels as late as the order rule allows give the offline risks; labels one batch
    later than that (the stream already passed their ``label_time``) change the merchant
    risks of a few transactions and nothing else: the documented parity limit."""
    txns, labels, values = generated
    verdicts = label_events(txns, labels)
    offline = build_features(txns, labels)
    streamed, _ = _stream(values, 3, 100, labels=verdicts, labels_late=True)
    _assert_parity(offline, streamed)
    tardy, _ = _stream(values, 3, 100, labels=verdicts, labels_late=True, labels_lag=1)
    expected = offline[feature_names()].to_numpy(np.float64)
    got = np.vstack([tardy[t] for t in offline["transaction_id"]])
    differing = ~np.isclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    risk = [i for i, n in enumerate(feature_names()) if "fraud_risk" in n]
    assert differing[:, risk].any()
    assert not np.delete(differing, risk, axis=1).any()


@pytest.mark.parametrize("keep_links", [True, False])
def test_keyed_labels_reach_only_their_merchants_bucket_and_need_no_links(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
    keep_links: bool,
) -> None:
    """Labels that carry their transaction's merchant and time, sent to that merchant's
    bucket only, with partitions cut at different times, capped batches and labels as late
    as the order rule allows: the offline features either way. Without links the stage
    stores and reads none."""
    txns, labels, values = generated
    batches = _partitioned(values, 6, 25, seed=6)
    store = _MerchantStore(keep_links=keep_links)
    streamed, late = _stream(
        values, 5, 0, labels=label_events(txns, labels), batches=batches, delay_s=3 * 86_400.0,
        labels_late=True, keyed=True, merchants=store,
    )  # fmt: skip
    assert late == 0
    _assert_parity(build_features(txns, labels), streamed)
    if keep_links:
        assert len(store.links) == len(txns)
        assert store.link_reads > 0
    else:
        assert store.links == {}
        assert store.link_reads == 0


def test_without_links_a_label_without_keys_counts_only_before_its_transaction(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    """Without links, a label that names only its transaction still resolves when it is
    read before the transaction (it waits in ``unresolved``); read after it, it cannot find
    its merchant and the merchant risks stay at what no label gives."""
    txns, labels, values = generated
    verdicts = label_events(txns, labels)
    offline = build_features(txns, labels)
    waiting, _ = _stream(
        values, 5, 200, labels=verdicts, labels_waiting=True,
        merchants=_MerchantStore(keep_links=False),
    )  # fmt: skip
    _assert_parity(offline, waiting)
    after, _ = _stream(
        values, 5, 200, labels=verdicts, labels_late=True, labels_lag=1,
        merchants=_MerchantStore(keep_links=False),
    )  # fmt: skip
    _assert_parity(build_features(txns, labels.iloc[:0]), after)


def test_invalid_messages_become_dead_letters_and_touch_no_state() -> None:
    bucket = BucketState()
    poison = [
        Message(b"not json", b"k", "transactions", 0, 1, 0),
        Message(b'{"transaction_id": "x"}', None, "transactions", 0, 2, 0),
        Message(None, None, "transactions", 1, 3, 0),
    ]
    rows = process_bucket(bucket, poison, TransactionValidator(), NOW)
    assert [r.reason for r in rows] == ["unparseable", "missing_field", "unparseable"]
    for row in rows:
        letter = json.loads(row.dead_letter or b"")
        assert letter["source_offset"] == row.message.offset
        assert letter["reason"] == row.reason
    assert bucket.columns() == ([], [], [])


def _one_cards_first_three(values: list[bytes]) -> tuple[str, list[bytes]]:
    """The first card of the history and its first three transactions (event-time order)."""
    records = [json.loads(v) for v in values]
    card = records[0]["card_id"]
    mine = [v for v, r in zip(values, records, strict=True) if r["card_id"] == card][:3]
    assert len(mine) == 3
    return card, mine


def test_a_late_event_is_scored_but_not_added(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    _, mine = _one_cards_first_three(generated[2])
    bucket = BucketState()
    process_bucket(bucket, _messages([mine[0], mine[2]]), TransactionValidator(), NOW)
    before = bucket.columns()
    rows = process_bucket(bucket, _messages([mine[1]]), TransactionValidator(), NOW)
    assert rows[0].late is True
    assert bucket.columns() == before


def test_per_card_states_load_each_touched_card_once_and_write_back_only_updated_ones(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    card, mine = _one_cards_first_three(generated[2])
    stored: dict[str, bytes] = {}
    first = LoadedCards(stored.get)
    process_bucket(first, _messages([mine[0], mine[2]]), TransactionValidator(), NOW)
    stored.update(first.updated())
    assert list(stored) == [card]

    loads: list[str] = []

    def load(card_id: str) -> bytes | None:
        loads.append(card_id)
        return stored.get(card_id)

    # A late transaction reads its card's state and leaves it as it was.
    late = LoadedCards(load)
    rows = process_bucket(late, _messages([mine[1], mine[1]]), TransactionValidator(), NOW)
    assert [r.late for r in rows] == [True, True]
    assert loads == [card]
    assert late.updated() == {}


def test_state_of_cards_idle_for_30_days_is_dropped() -> None:
    bucket = BucketState(blobs={"a": b"x", "b": b"y"}, last_time={"a": 0.0, "b": 100.0})
    assert bucket.expire(30 * 86400.0 + 50.0) == 1
    assert list(bucket.blobs) == ["b"]


def test_a_merchant_bucket_header_round_trips_exactly() -> None:
    header = BucketHeader(
        pending=[LabelEvent("t1", "m1", 3.0, 9.5, True)],
        unresolved={"t2": (4.0, False)},
        seen_time=12.5,
        held=[MerchantTxn("t3", "m2", 11.0, ["t3", "c", "m2", 11_000_000, "{}", [0.5, math.nan]])],
    )
    again = BucketHeader.from_bytes(header.to_bytes())
    assert again.to_bytes() == header.to_bytes()
    assert again.held[0].payload[5][1] != again.held[0].payload[5][1], "NaN survives"


def _model(threshold: float = 0.5) -> ScoringModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(feature_names())))
    y = (x[:, 0] + x[:, 5] > 1).astype(int)
    model = XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(x, y)
    return ScoringModel(model, "7", threshold, FEATURE_SET_VERSION)


def test_scores_equal_predict_proba_and_reasons_are_top_contributions() -> None:
    scoring = _model()
    x = np.random.default_rng(1).normal(size=(50, len(feature_names())))
    x[0, 3] = np.nan
    result = score(scoring, x)
    np.testing.assert_array_equal(result.score, scoring.model.predict_proba(x)[:, 1])
    assert list(result.alert) == list(result.score >= 0.5)
    for row, reasons in enumerate(result.reasons):
        assert len(reasons) <= 3
        contributions = [c for _, _, c in reasons]
        assert contributions == sorted(contributions, reverse=True)
        assert all(c > 0 for c in contributions)
        for name, value, _ in reasons:
            column = feature_names().index(name)
            assert value == x[row, column] or (np.isnan(value) and np.isnan(x[row, column]))
    assert any(name == feature_names()[0] for r in result.reasons for name, _, _ in r)
    # Alerts carry exact TreeSHAP contributions, the other rows the path attribution.
    assert list(result.exact) == list(result.alert)
    assert result.alert.any()
    assert not result.alert.all()
    booster = scoring.model.get_booster()
    matrix = xgboost.DMatrix(x, missing=np.nan, feature_names=feature_names())
    for row, exact in enumerate(result.exact.tolist()):
        contribs = booster.predict(matrix, pred_contribs=True, approx_contribs=not exact)[row]
        for name, _, contribution in result.reasons[row]:
            assert contribution == pytest.approx(contribs[feature_names().index(name)], rel=1e-6)


def test_top_reasons_without_contributions_are_empty() -> None:
    assert top_reasons(None, np.zeros((2, 3))) == [[], []]


class _Loaded:
    def __init__(self, version: str, fsv: str) -> None:
        self.model, self.version, self.threshold = object(), version, 0.5
        self.feature_set_version, self.feature_names = fsv, feature_names()


def test_reload_swaps_on_a_moved_alias_and_refuses_another_feature_set() -> None:
    alias: dict[str, str | None] = {"champion": None}
    fsv = {"1": FEATURE_SET_VERSION, "2": "999", "3": FEATURE_SET_VERSION}
    clock = [0.0]
    holder = ModelHolder(
        "champion",
        lookup=lambda a: alias[a],
        loader=lambda v, role: ScoringModel.checked(_Loaded(v, fsv[v]), role),
        interval_s=10,
        clock=lambda: clock[0],
        name="fraud-detector",
    )
    assert not holder.refresh()
    assert holder.detail.startswith("fraud-detector has no @champion yet: train and promote")
    alias["champion"] = "1"
    assert holder.refresh(force=True)
    assert holder.current is not None
    assert holder.current.version == "1"
    assert holder.detail == "serving version 1 (@champion)"
    alias["champion"] = "2"
    assert not holder.refresh(), "not due before the interval"
    clock[0] = 11
    assert not holder.refresh()
    assert holder.current.version == "1"
    assert holder.counts.refused == 1
    assert holder.detail.startswith("refused @champion version 2: model version 2 uses feature")
    clock[0] = 30
    holder.refresh()
    assert holder.counts.refused == 1, "a refused version is not retried"
    alias["champion"] = "3"
    clock[0] = 45
    assert holder.refresh()
    assert holder.current.version == "3"
    assert holder.counts.loaded == 2


def test_reload_keeps_the_model_when_the_registry_fails() -> None:
    def lookup(_alias: str) -> str:
        raise ConnectionError("registry down")

    holder = ModelHolder("champion", lookup, lambda v, r: _model(), 1.0)
    holder.current = _model()
    assert not holder.refresh()
    assert holder.counts.failed == 1
    assert holder.current is not None
    assert holder.detail == "cannot read @champion from the registry: registry down"


def test_incompatible_feature_columns_are_refused() -> None:
    loaded = _Loaded("4", FEATURE_SET_VERSION)
    loaded.feature_names = list(reversed(feature_names()))
    with pytest.raises(IncompatibleModelError):
        ScoringModel.checked(loaded)


def test_random_batches_of_one_card_keep_order_within_batch() -> None:
    """Shuffled input inside a batch is sorted by event time before the update."""
    base = datetime(2026, 3, 3, tzinfo=UTC)
    values = [
        json.dumps(
            {
                "transaction_id": f"t{i}",
                "event_time": (base + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                "card_id": "c1",
                "merchant_id": f"m{i % 3}",
                "amount": 10.0 + i,
                "currency": "EUR",
            }
        ).encode()
        for i in range(20)
    ]
    shuffled = values[:]
    random.Random(3).shuffle(shuffled)
    rows = process_bucket(BucketState(), _messages(shuffled), TransactionValidator(), NOW)
    assert [r.txn.transaction_id for r in rows if r.txn] == [f"t{i}" for i in range(20)]
    assert not any(r.late for r in rows)
    assert rows[-1].card_features is not None
    assert rows[-1].card_features[0] == 20.0


def test_the_bucket_count_is_recorded_and_fixed_for_a_checkpoint(tmp_path: Path) -> None:
    from fraudstream.adapters.object_store import Location
    from fraudstream.scoring.run import CheckpointBucketsError, check_buckets
    from fraudstream.settings import S3Settings

    fresh = Location(str(tmp_path / "fresh"), S3Settings())
    assert check_buckets(fresh, 2) == "packed"
    assert check_buckets(fresh, 2) == "packed"
    with pytest.raises(CheckpointBucketsError, match="keeps its card state in 2 buckets"):
        check_buckets(fresh, 8)
    assert fresh.list("card-state") == ["card-state/4"]

    # A checkpoint keeps the layout it was started with, whatever a later run asks for.
    per_card = Location(str(tmp_path / "per-card"), S3Settings())
    assert check_buckets(per_card, 2, "per-card") == "per-card"
    per_card.write("spark/offsets/0", b"v1")
    assert check_buckets(per_card, 2, "packed") == "per-card"
    assert per_card.list("card-state") == ["card-state/5"]

    # Offsets without a layout record: a checkpoint of an earlier scorer, whatever the count.
    earlier = Location(str(tmp_path / "earlier"), S3Settings())
    earlier.write("spark/offsets/0", b"v1")
    earlier.write("card-buckets/8", b"8")
    for buckets in (2, 8):
        with pytest.raises(CheckpointBucketsError, match="start a new checkpoint"):
            check_buckets(earlier, buckets)
    assert earlier.list("card-state") == []

    # A checkpoint of the scorer before the merchant stage kept its state in Spark: refused.
    before = Location(str(tmp_path / "before"), S3Settings())
    before.write("spark/offsets/0", b"v1")
    before.write("card-state/2", b"2")
    with pytest.raises(CheckpointBucketsError, match="start a new checkpoint"):
        check_buckets(before, 2)


def test_a_bucket_round_trips_through_its_packed_value() -> None:
    bucket = BucketState(
        blobs={"card-é": b"\x00\x01", "card-2": b"", "c3": bytes(range(256))},
        last_time={"card-é": 1.5, "card-2": -2.0, "c3": 1e9},
    )
    back = BucketState.from_bytes(bucket.to_bytes())
    assert back.blobs == bucket.blobs
    assert back.last_time == bucket.last_time
    assert BucketState.from_bytes(BucketState().to_bytes()).blobs == {}
    packed = bucket.to_bytes()
    for broken in (b"", b"XXXX" + packed[4:], packed[:-1], packed + b"x"):
        with pytest.raises(ValueError, match="card bucket value"):
            BucketState.from_bytes(broken)


def test_a_transaction_survives_its_stage_columns_through_pandas() -> None:
    """The contract columns carry every field exactly: optionals absent (None, or NaN where
    pandas made a float column of them), the event time to the microsecond, integers."""
    full = Transaction(
        transaction_id="t1",
        event_time=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        card_id="c1",
        merchant_id="m1",
        amount=12.34,
        currency="EUR",
        customer_id="u1",
        merchant_category="5411",
        channel="pos",
        country="DE",
        lat=52.5,
        lon=13.4,
        device_id="d1",
        ip="10.0.0.1",
        schema_version=1,
    )
    bare = Transaction("t2", datetime(2026, 3, 1, tzinfo=UTC), "c2", "m2", 0.0, "USD")
    frame = pd.DataFrame(
        [transaction_values(full), transaction_values(bare)], columns=TRANSACTION_COLUMNS
    )
    assert frame["lat"].isna().tolist() == [False, True], "pandas turned None into NaN"
    back = [transaction_from(v) for v in frame.itertuples(index=False, name=None)]
    assert back == [full, bare]
    assert TRANSACTION_COLUMNS[:2] == ["transaction_id", "event_time_us"]


def test_the_merchant_stage_reads_a_labels_keys_only_when_it_has_both() -> None:
    base = {"transaction_id": "t1", "is_fraud": True, "label_time": "2026-01-02T00:00:00Z"}
    base["source"] = "chargeback"
    keyed = {**base, "merchant_id": "m1", "event_time": "2026-01-01T00:00:00.000001Z"}
    assert parse_label(json.dumps(keyed).encode()) == (
        "t1", 1_767_312_000_000_000, True, "m1", 1_767_225_600_000_001
    )  # fmt: skip
    assert parse_label(json.dumps(base).encode()) == ("t1", 1_767_312_000_000_000, True, None, None)
    assert parse_label(b"{not a label") is None
