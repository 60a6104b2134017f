"""The scorer's pure parts: the card-bucket stage, the merchant book, scoring and reload.

The streaming path must give the offline builder's features: here the stage and the
book run over a generated history split into arbitrary micro-batches and buckets,
with states round-tripped through bytes between batches as Spark stores them.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
from xgboost import XGBClassifier

from fraudstream.features.card import CardState
from fraudstream.features.catalogue import CARD_FEATURES, FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import LabelEvent
from fraudstream.features.replay import build_features, label_events
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.generator.config import LabelConfig
from fraudstream.schema.tables import wire_records
from fraudstream.scoring.batch import Accepted, accepted_from, feature_matrix
from fraudstream.scoring.cards import (
    BucketState,
    DecodedCards,
    LoadedCards,
    Message,
    process_bucket,
)
from fraudstream.scoring.merchants import MerchantBook
from fraudstream.scoring.model import IncompatibleModelError, ScoringModel, score, top_reasons
from fraudstream.scoring.reload import ModelHolder
from fraudstream.validation import TransactionValidator

NOW = datetime(2026, 11, 1, tzinfo=UTC)
START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, pd.DataFrame, list[bytes]]:
    # Analysts find most fraud within hours, so labels reach later transactions of the history.
    labels = LabelConfig(analyst_share=0.9, analyst_median_days=0.3)
    config = GeneratorConfig(
        seed=5, start=START, days=6, customers=80, merchants=300, fraud_rate=0.05, labels=labels
    )
    data = generate(config)
    values = [value for _, _, value in wire_records(data.transactions, "transaction")]
    return data.transactions.to_pandas(), data.labels.to_pandas(), values


def _messages(values: list[bytes]) -> list[Message]:
    return [Message(v, None, "transactions", i % 3, i, 0) for i, v in enumerate(values)]


def _stream(
    values: list[bytes],
    buckets: int,
    batch_size: int,
    labels: list[LabelEvent] | None = None,
    layout: str = "packed",
    decoded: DecodedCards | None = None,
    fail_every: int = 0,
    labels_waiting: bool = False,
) -> tuple[dict[str, np.ndarray], int]:
    """Run the stage and the book over micro-batches; features by transaction id, late count.

    Card states go through bytes between batches as Spark keeps them: a bucket's packed
    value, or one value per card (``per-card``). ``decoded``: the worker's cache of
    decoded states. ``fail_every``: every n-th batch first runs an attempt whose states
    are encoded but never stored (a task that failed before Spark committed), then again.
    ``labels_waiting``: every label is read before its transaction is seen (it waits in the
    book's ``unresolved``) and resolved when the merchant stage meets the transaction.
    """
    cache = DecodedCards(capacity=0) if decoded is None else decoded
    validator = TransactionValidator()
    stored: dict[int, bytes] = {}  # each bucket as Spark's state keeps it
    per_card: dict[str, bytes] = {}
    waiting = {lb.transaction_id: (lb.label_time, lb.is_fraud) for lb in labels or []}
    book_bytes = MerchantBook(unresolved=waiting if labels_waiting else {}).to_bytes()
    out: dict[str, np.ndarray] = {}
    late = 0
    messages = _messages(values)
    for number, start in enumerate(range(0, len(messages), batch_size)):
        chunk = messages[start : start + batch_size]
        by_bucket: dict[int, list[Message]] = {}
        for m in chunk:
            card = json.loads(m.value or b"{}").get("card_id", "")
            by_bucket.setdefault(hash(card) % buckets, []).append(m)
        if fail_every and number % fail_every == 0:
            for bucket_id, msgs in by_bucket.items():
                attempt = _bucket_of(layout, bucket_id, stored, per_card, cache)
                process_bucket(attempt, msgs, validator, NOW)
                attempt.updated() if isinstance(attempt, LoadedCards) else attempt.to_bytes()
        accepted: list[Accepted] = []
        for bucket_id, msgs in by_bucket.items():
            bucket = _bucket_of(layout, bucket_id, stored, per_card, cache)
            for row in process_bucket(bucket, msgs, validator, NOW):
                assert row.reason is None, row.dead_letter
                accepted.append(
                    accepted_from(row.record, row.card_features, 0, 0, 0, row.late)  # type: ignore[arg-type]
                )
            if isinstance(bucket, LoadedCards):
                per_card.update(bucket.updated())
            else:
                stored[bucket_id] = bucket.to_bytes()
        book = MerchantBook.from_bytes(book_bytes)
        if labels_waiting:
            book.resolve([a.event for a in accepted])
        elif labels:
            book.add_labels(
                [
                    lb
                    for lb in labels
                    if lb.transaction_id in {a.txn.transaction_id for a in accepted}
                ]
            )
        matrix, late_flags = feature_matrix(accepted, book)
        book_bytes = book.to_bytes()
        late += sum(late_flags)
        for row, vector in zip(accepted, matrix, strict=True):
            out[row.txn.transaction_id] = vector
    return out, late


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
    risk = offline[[c for c in feature_names() if "fraud_risk" in c]].to_numpy()
    assert risk.max() > 0, "the history must exercise the label path"


def test_labels_read_before_their_transaction_resolve_when_the_stage_meets_it(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    """A label ingested before its transaction reached the scorer waits in ``unresolved``;
    the merchant stage resolves it with the batch holding the transaction: same risk."""
    txns, labels, values = generated
    streamed, _ = _stream(values, 5, 200, labels=label_events(txns, labels), labels_waiting=True)
    _assert_parity(build_features(txns, labels), streamed)


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


def test_merchant_book_round_trips_exactly(
    generated: tuple[pd.DataFrame, pd.DataFrame, list[bytes]],
) -> None:
    txns, labels, values = generated
    book = MerchantBook(cursor=12.5, unresolved={"t1": (3.0, True)})
    book.add_labels(label_events(txns, labels)[:20])
    width = len(CARD_FEATURES)
    accepted = [accepted_from(v.decode(), [0.0] * width, 0, 0, 0, False) for v in values[:300]]
    feature_matrix(accepted, book)
    again = MerchantBook.from_bytes(book.to_bytes())
    assert again == book


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
    alias = {"champion": "1"}
    fsv = {"1": FEATURE_SET_VERSION, "2": "999", "3": FEATURE_SET_VERSION}
    clock = [0.0]
    holder = ModelHolder(
        "champion",
        lookup=lambda a: alias[a],
        loader=lambda v, role: ScoringModel.checked(_Loaded(v, fsv[v]), role),
        interval_s=10,
        clock=lambda: clock[0],
    )
    assert holder.refresh()
    assert holder.current is not None
    assert holder.current.version == "1"
    alias["champion"] = "2"
    assert not holder.refresh(), "not due before the interval"
    clock[0] = 11
    assert not holder.refresh()
    assert holder.current.version == "1"
    assert holder.counts.refused == 1
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
    assert [r.transaction_id for r in rows] == [f"t{i}" for i in range(20)]
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
    assert fresh.list("card-state") == ["card-state/2"]

    # A checkpoint keeps the layout it was started with, whatever a later run asks for.
    per_card = Location(str(tmp_path / "per-card"), S3Settings())
    assert check_buckets(per_card, 2, "per-card") == "per-card"
    per_card.write("spark/offsets/0", b"v1")
    assert check_buckets(per_card, 2, "packed") == "per-card"
    assert per_card.list("card-state") == ["card-state/3"]

    # Offsets without a layout record: a checkpoint of an earlier scorer, whatever the count.
    earlier = Location(str(tmp_path / "earlier"), S3Settings())
    earlier.write("spark/offsets/0", b"v1")
    earlier.write("card-buckets/8", b"8")
    for buckets in (2, 8):
        with pytest.raises(CheckpointBucketsError, match="start a new checkpoint"):
            check_buckets(earlier, buckets)
    assert earlier.list("card-state") == []


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
