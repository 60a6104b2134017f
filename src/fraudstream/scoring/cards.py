"""The stateful stage of the stream: validate a bucket's messages and compute card features.

Spark groups messages by card bucket (a hash of ``card_id`` modulo N) and hands each
bucket's messages of a micro-batch to ``process_bucket`` together with that bucket's
card states. Everything here is pure: no Spark, no Kafka, no clock (the validation
time is passed in), so the unit tests and the stream run the same code.

Why buckets and not one grouping key per card: every grouping key costs the stage a
call into Python, Arrow frames and state calls across the Python-JVM bridge, while
``update_card`` costs a few µs. Within a bucket the card states are kept in one of two
layouts (``CARD_STATE_LAYOUTS``):

- ``per-card`` (``LoadedCards``): one state entry per card; a micro-batch reads and
  writes only the cards it touches (two bridge calls per card), so its cost does not
  grow with the number of cards in state;
- ``packed`` (``BucketState``): all of a bucket's cards in one value, read and written
  once per micro-batch (only the touched cards are decoded and re-encoded); fewer
  bridge calls, but every batch moves the whole bucket, so its cost grows with the
  card count (docs/scorer.md measures where the two cross).

Order: a card's messages are processed sorted by (event time, transaction id), the
order the offline builder replays them in. A transaction older than its card's latest
one (late data) is scored on a copy of the card's state and not added to it, because
the update functions need event-time order; its row says ``late=True``.
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import CARD_FEATURES, CARD_HISTORY_S
from fraudstream.features.codec import decode_card, encode_card
from fraudstream.features.events import TxnEvent, from_record
from fraudstream.schema import Transaction
from fraudstream.validation import Rejection, SourcePosition, TransactionValidator, dead_letter

CARD_WIDTH = len(CARD_FEATURES)
CARD_STATE_LAYOUTS = {"packed": 4, "per-card": 5}
"""Card-state layout name -> the number recorded in a checkpoint. Earlier numbers are
checkpoints this version does not read: 1, an earlier packed layout (a row of three
arrays); 2 and 3, this layout in a query without the merchant stage in Spark state
(Spark refuses a checkpoint whose query had other sources or stateful operators)."""
DECODED_CARDS_CAPACITY = 20_000
"""Decoded card states a worker process keeps between micro-batches (``DecodedCards``)."""
_BUCKET_MAGIC = b"FSB2"
_BUCKET_HEADER = struct.Struct("<4sQ")
NAN = math.nan


class DecodedCards:
    """Decoded card states kept between micro-batches, each under the bytes it was decoded from.

    Decoding a card's ``features.codec`` bytes costs tens of µs of Python per card, the
    largest part of the stage's per-row work. A Spark Python worker lives across
    micro-batches, so the states a batch encoded are kept here with their bytes; the
    next batch that reads the very same bytes from Spark's state takes the kept state
    instead of decoding them. The bytes decide, never the batch id or a version: after
    a failed batch, a replay or a restart from an older checkpoint the stored bytes
    differ (or the entry is gone) and the card is decoded as before. Since
    ``decode_card(encode_card(s)) == s``, a kept state equals what decoding would give.

    A state handed out is removed until ``keep`` puts it back with its new bytes, so a
    state being updated, or one of a batch that failed midway, is never handed out.
    At most ``capacity`` cards are kept, the least recently used leaving first.
    """

    def __init__(self, capacity: int = DECODED_CARDS_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: dict[str, tuple[bytes, CardState]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def decode(self, card_id: str, blob: bytes) -> CardState:
        """The state of ``blob``: the kept one when it was kept with these bytes."""
        entry = self._entries.pop(card_id, None)
        if entry is not None and entry[0] == blob:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return decode_card(blob)

    def keep(self, card_id: str, blob: bytes, state: CardState) -> None:
        """Keep ``state``, which ``blob`` encodes, for the next batch (most recent last)."""
        self._entries.pop(card_id, None)
        self._entries[card_id] = (blob, state)
        self._trim()

    def resize(self, capacity: int) -> None:
        """Keep at most ``capacity`` cards from now on (0: none)."""
        self.capacity = capacity
        self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self.capacity:
            del self._entries[next(iter(self._entries))]


_NO_CACHE = DecodedCards(capacity=0)


@dataclass
class BucketState:
    """The card states of one bucket: encoded blobs by card id, and each card's last event time.

    ``cards`` holds decoded states of the cards touched in this batch; ``to_bytes``
    (through ``columns``) writes them back. ``last_time`` lets idle cards be dropped
    without decoding them.
    """

    blobs: dict[str, bytes] = field(default_factory=dict)
    last_time: dict[str, float] = field(default_factory=dict)
    cards: dict[str, CardState] = field(default_factory=dict)
    decoded: DecodedCards = field(default=_NO_CACHE, repr=False, compare=False)

    def card(self, card_id: str) -> CardState | None:
        state = self.cards.get(card_id)
        if state is None and card_id in self.blobs:
            state = self.cards[card_id] = self.decoded.decode(card_id, self.blobs[card_id])
        return state

    def expire(self, now: float) -> int:
        """Drop cards idle for the whole history horizon (event time); returns how many.

        Such a card's features are those of a new card, so dropping changes nothing
        but the size of the state.
        """
        idle = [c for c, t in self.last_time.items() if t <= now - CARD_HISTORY_S]
        for card_id in idle:
            self.blobs.pop(card_id, None)
            self.cards.pop(card_id, None)
            del self.last_time[card_id]
        return len(idle)

    def to_bytes(self) -> bytes:
        """The bucket as one value (touched cards re-encoded): what Spark's state keeps.

        Layout (little endian): ``FSB2``, the card count n (u64), n last event times
        (f64), n end offsets of the card ids and n of the card states (u64, cumulative),
        then the UTF-8 card ids and the encoded states back to back. One opaque value
        crosses the Python-JVM bridge as it is; a row of three arrays was converted
        element by element on both sides.
        """
        ids, blobs, last_times = self.columns()
        names = [c.encode() for c in ids]
        parts = [
            _BUCKET_HEADER.pack(_BUCKET_MAGIC, len(ids)),
            np.asarray(last_times, dtype="<f8").tobytes(),
            np.cumsum([len(n) for n in names], dtype="<u8").tobytes(),
            np.cumsum([len(b) for b in blobs], dtype="<u8").tobytes(),
        ]
        return b"".join([*parts, *names, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes, decoded: DecodedCards = _NO_CACHE) -> BucketState:
        """The bucket written by ``to_bytes``; ``ValueError`` for anything else.

        ``decoded``: where touched cards' states are looked up before decoding and kept
        after encoding (``DecodedCards``)."""
        data = bytes(data)
        if len(data) < _BUCKET_HEADER.size:
            raise ValueError(f"a card bucket value needs {_BUCKET_HEADER.size} bytes")
        magic, count = _BUCKET_HEADER.unpack_from(data)
        if magic != _BUCKET_MAGIC:
            raise ValueError(f"not a card bucket value (starts with {magic!r})")
        at = _BUCKET_HEADER.size
        if len(data) < at + 24 * count:
            raise ValueError(f"a card bucket value of {count} cards is cut short")
        last_times = np.frombuffer(data, "<f8", count, at).tolist()
        at += 8 * count
        name_ends = np.frombuffer(data, "<u8", count, at).tolist()
        at += 8 * count
        blob_ends = np.frombuffer(data, "<u8", count, at).tolist()
        at += 8 * count
        names_at, blobs_at = at, at + (name_ends[-1] if count else 0)
        if blobs_at + (blob_ends[-1] if count else 0) != len(data):
            raise ValueError("a card bucket value's length does not match its offsets")
        ids = [
            data[names_at + a : names_at + b].decode()
            for a, b in zip([0, *name_ends], name_ends, strict=False)
        ]
        blobs = [
            data[blobs_at + a : blobs_at + b]
            for a, b in zip([0, *blob_ends], blob_ends, strict=False)
        ]
        return cls(
            blobs=dict(zip(ids, blobs, strict=True)),
            last_time=dict(zip(ids, last_times, strict=True)),
            decoded=decoded,
        )

    def columns(self) -> tuple[list[str], list[bytes], list[float]]:
        """(card ids, blobs, last times) with the touched cards re-encoded."""
        for card_id, state in self.cards.items():
            blob = self.blobs[card_id] = encode_card(state)
            self.decoded.keep(card_id, blob, state)
        self.cards.clear()
        ids = list(self.blobs)
        return ids, [self.blobs[c] for c in ids], [self.last_time[c] for c in ids]


class CardStates(Protocol):
    """What ``process_bucket`` needs of a bucket's card states, in either layout."""

    cards: dict[str, CardState]
    last_time: dict[str, float]

    def card(self, card_id: str) -> CardState | None: ...

    def expire(self, now: float) -> int: ...


class LoadedCards:
    """A bucket's cards in the per-card layout: each touched card loaded once through ``load``.

    ``load(card_id)`` returns the card's stored ``features.codec`` bytes or None;
    ``updated`` returns the cards a batch added transactions to, encoded, for the
    caller to write back (a late transaction reads its card but does not change it).
    Idle cards are not expired here: Spark's state TTL drops them (``scoring.stream``).
    """

    def __init__(
        self, load: Callable[[str], bytes | None], decoded: DecodedCards = _NO_CACHE
    ) -> None:
        self._load = load
        self._decoded = decoded
        self._absent: set[str] = set()
        self._stored: dict[str, bytes] = {}
        self.cards: dict[str, CardState] = {}
        self.last_time: dict[str, float] = {}

    def card(self, card_id: str) -> CardState | None:
        state = self.cards.get(card_id)
        if state is None and card_id not in self._absent:
            stored = self._load(card_id)
            if stored is None:
                self._absent.add(card_id)
            else:
                self._stored[card_id] = stored
                state = self.cards[card_id] = self._decoded.decode(card_id, stored)
        return state

    def expire(self, now: float) -> int:
        return 0

    def updated(self) -> dict[str, bytes]:
        """Card id -> encoded state of every card a transaction was added to.

        Every card read is kept in ``decoded`` with the bytes it now has in the state:
        the new encoding of an updated card, the stored bytes of one only read (late).
        """
        out = {}
        for card_id, state in self.cards.items():
            if card_id in self.last_time:
                blob = out[card_id] = encode_card(state)
            else:
                blob = self._stored[card_id]
            self._decoded.keep(card_id, blob, state)
        return out


@dataclass(frozen=True)
class Message:
    """One Kafka record of the source topic as the stage receives it."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass
class StageRow:
    """One output row of the stage: an accepted transaction with card features, or a dead letter.

    For an accepted one ``txn`` is the validated transaction and ``card_features`` its
    card features in catalogue order; for a rejected one ``reason`` is set and
    ``dead_letter`` holds the record to publish.
    """

    message: Message
    txn: Transaction | None = None
    card_features: list[float] | None = None
    late: bool = False
    reason: str | None = None
    dead_letter: bytes | None = None


def _reject(message: Message, rejection: Rejection, now: datetime) -> StageRow:
    source = SourcePosition(message.topic, message.partition, message.offset, message.key)
    return StageRow(
        message=message,
        reason=rejection.reason.value,
        dead_letter=dead_letter(rejection, message.value, source, now),
    )


def process_bucket(
    bucket: CardStates,
    messages: Iterable[Message],
    validator: TransactionValidator,
    now: datetime,
) -> list[StageRow]:
    """Validate ``messages`` and add the accepted ones to their cards, in event-time order.

    Returns one row per message (dead letters first, then transactions in the order
    they were applied). ``bucket`` is updated in place; the caller persists it.
    """
    rejected: list[StageRow] = []
    accepted: list[tuple[TxnEvent, Transaction, Message]] = []
    for message in messages:
        parsed = validator.validate(message.value, now)
        if isinstance(parsed, Rejection):
            rejected.append(_reject(message, parsed, now))
        else:
            accepted.append((from_record(parsed), parsed, message))
    accepted.sort(key=lambda item: (item[0].time, item[0].transaction_id))
    rows = rejected
    for event, txn, message in accepted:
        state = bucket.card(event.card_id)
        late = state is not None and bool(state.times) and event.time < state.times[-1]
        if late:
            _, features = update_card(copy.deepcopy(state), event)
        else:
            state, features = update_card(state, event)
            bucket.cards[event.card_id] = state
            bucket.last_time[event.card_id] = event.time
        rows.append(StageRow(message=message, txn=txn, card_features=list(features), late=late))
    if accepted:
        bucket.expire(max(e.time for e, _, _ in accepted))
    return rows
