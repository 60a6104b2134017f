"""Merchant features in the stream: one merchant bucket's micro-batch, pure.

Spark groups the card stage's transactions by merchant bucket (a hash of
``merchant_id`` modulo N) and hands each bucket's rows of a micro-batch, with every
label read from ``transaction_labels`` in that batch, to ``MerchantBucket.step``
(``scoring.merchant_stage`` does the Spark side). The bucket's state is read lazily
through two loaders, one merchant or one link at a time, so a batch touches only the
entries it needs; everything here is pure (no Spark, no Kafka, no clock), so the unit
tests run the very code the stream runs.

State of a bucket:

- one ``MerchantState`` per merchant (``features.merchant``; ``features.codec`` bytes);
- one link per transaction, ``transaction_id -> (merchant_id, event time)``: a label
  that names only its transaction needs the link to find its merchant. A keyed label
  (``schema.Label.keyed``: it carries its transaction's ``merchant_id`` and
  ``event_time``) does not; when every label source sends keys, ``keep_links=False``
  stops writing links, the stage's largest per-transaction cost;
- the header (``BucketHeader``): labels resolved but not yet due (``pending``, label
  order), labels whose transaction this bucket has not seen (``unresolved``: every
  bucket receives every label; the one that sees the transaction resolves it), the
  newest event time seen, and the transactions held back by the order rule.

Order rule (event time): the bucket scores its transactions in (event time,
transaction id) order, releasing a transaction once the bucket has seen an event
``delay_s`` later (``delay_s = 0``: everything a batch brings, at once), or when the
processing-time release fires (``release_all``). Kafka partitions are cut at different
event times by a micro-batch; as long as a merchant's transactions from different
partitions are less than ``delay_s`` apart in arrival skew, they reach
``update_merchant`` in the offline builder's order. A transaction older than its
merchant's latest one (arrived after the rule released a later one) is late: scored
on a copy of the state and not added, like the card stage's late events.

Labels: a label is applied before the first released transaction whose event time is
at or after its ``label_time``, the offline rule; a label that reaches the bucket after
the bucket released transactions past its ``label_time`` takes effect from the next
released transaction on (the offline builder applies it from ``label_time`` exactly).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fraudstream.features.catalogue import MERCHANT_FEATURES, MERCHANT_HISTORY_S
from fraudstream.features.codec import decode_merchant, encode_merchant
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant

MERCHANT_WIDTH = len(MERCHANT_FEATURES)
_FORMAT = 3
"""The header's JSON layout; 3 holds transactions as their contract columns
(``rows.TXN_COLUMNS``)."""


class MerchantTxn(NamedTuple):
    """A transaction as the merchant stage needs it; ``payload`` rides along untouched
    (the card stage's columns, JSON-serialisable so a held transaction can be stored)."""

    transaction_id: str
    merchant_id: str
    time: float
    payload: Any = None


class LabelIn(NamedTuple):
    """A verdict from ``transaction_labels``; ``merchant_id`` and ``txn_time`` when the
    label is keyed (its transaction's merchant and event time), else None."""

    transaction_id: str
    label_time: float
    is_fraud: bool
    merchant_id: str | None = None
    txn_time: float | None = None

    @property
    def keys(self) -> tuple[str, float] | None:
        """The transaction's merchant and event time when the label carries both."""
        if self.merchant_id is None or self.txn_time is None:
            return None
        return self.merchant_id, self.txn_time


class Released(NamedTuple):
    """A transaction the order rule released, with its merchant features."""

    txn: MerchantTxn
    features: tuple[float, ...]
    late: bool


def _label_order(label: LabelEvent) -> tuple[float, float, str]:
    """The offline builder's label order: label time, then transaction time, then id."""
    return (label.label_time, label.txn_time, label.transaction_id)


@dataclass
class BucketHeader:
    """The small part of a bucket's state, read and written once per micro-batch."""

    pending: list[LabelEvent] = field(default_factory=list)
    unresolved: dict[str, tuple[float, bool]] = field(default_factory=dict)
    seen_time: float = float("-inf")
    held: list[MerchantTxn] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": _FORMAT,
                "pending": [list(p) for p in self.pending],
                "unresolved": self.unresolved,
                "seen_time": self.seen_time,
                "held": [list(h) for h in self.held],
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> BucketHeader:
        if not data:
            return cls()
        value = json.loads(data)
        if value.get("format") != _FORMAT:
            raise ValueError(f"merchant bucket format {value.get('format')!r} is not {_FORMAT}")
        return cls(
            pending=[
                LabelEvent(str(a), str(b), c, d, bool(e)) for a, b, c, d, e in value["pending"]
            ],
            unresolved={k: (float(v[0]), bool(v[1])) for k, v in value["unresolved"].items()},
            seen_time=float(value["seen_time"]),
            held=[MerchantTxn(str(a), str(b), float(c), d) for a, b, c, d in value["held"]],
        )


@dataclass
class MerchantBucket:
    """One bucket for one micro-batch: its header, and its merchants and links read lazily.

    ``load_merchant(id)`` gives a merchant's stored bytes (None: new); ``load_link(id)``
    a transaction's stored link (None: unknown to this bucket). After ``step``, the
    caller stores ``header``, ``updated()`` and ``links``.

    ``keep_links``: link every transaction, and resolve every label through its link
    (a keyed label's keys then only route it). False: no link is written or read; a
    keyed label is resolved by its own keys, and a label without keys only by its
    transaction arriving in the same batch or a later one.
    """

    load_merchant: Callable[[str], bytes | None]
    load_link: Callable[[str], tuple[str, float] | None]
    header: BucketHeader = field(default_factory=BucketHeader)
    keep_links: bool = True
    links: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Links of this batch's transactions (to store when ``keep_links``)."""
    _merchants: dict[str, MerchantState | None] = field(default_factory=dict)
    _touched: set[str] = field(default_factory=set)

    def merchant(self, merchant_id: str) -> MerchantState | None:
        if merchant_id not in self._merchants:
            blob = self.load_merchant(merchant_id)
            self._merchants[merchant_id] = None if blob is None else decode_merchant(blob)
        return self._merchants[merchant_id]

    def _set(self, merchant_id: str, state: MerchantState) -> None:
        self._merchants[merchant_id] = state
        self._touched.add(merchant_id)

    def updated(self) -> dict[str, bytes]:
        """The merchants this batch changed, as ``features.codec`` bytes."""
        out = {}
        for merchant_id in sorted(self._touched):
            state = self._merchants[merchant_id]
            if state is not None:
                out[merchant_id] = encode_merchant(state)
        return out

    def _queue(self, labels: Iterable[LabelEvent]) -> None:
        """Queue resolved labels (a label seen again replaces the queued one)."""
        fresh = {label.transaction_id: label for label in labels}
        if fresh:
            kept = [p for p in self.header.pending if p.transaction_id not in fresh]
            self.header.pending = sorted(kept + list(fresh.values()), key=_label_order)

    def _receive(self, txns: list[MerchantTxn], labels: list[LabelIn]) -> None:
        """Link this batch's transactions; resolve labels through the links or their keys,
        or keep them until their transaction arrives."""
        header = self.header
        for txn in txns:
            self.links[txn.transaction_id] = (txn.merchant_id, txn.time)
        resolved = []
        for txn in txns:
            waiting = header.unresolved.pop(txn.transaction_id, None)
            if waiting is not None:
                resolved.append(LabelEvent(txn.transaction_id, txn.merchant_id, txn.time, *waiting))
        for label in labels:
            link = self.links.get(label.transaction_id)
            if link is None and self.keep_links:
                link = self.load_link(label.transaction_id)
            elif link is None:
                link = label.keys
            if link is None:
                header.unresolved[label.transaction_id] = (label.label_time, label.is_fraud)
            else:
                resolved.append(
                    LabelEvent(label.transaction_id, link[0], link[1], label.label_time,
                               label.is_fraud)
                )  # fmt: skip
        self._queue(resolved)

    def _release(
        self, txns: list[MerchantTxn], delay_s: float, release_all: bool
    ) -> list[MerchantTxn]:
        header = self.header
        header.held.extend(txns)
        if txns:
            header.seen_time = max(header.seen_time, max(t.time for t in txns))
        frontier = float("inf") if release_all else header.seen_time - delay_s
        ready = [t for t in header.held if t.time <= frontier]
        header.held = [t for t in header.held if t.time > frontier]
        ready.sort(key=lambda t: (t.time, t.transaction_id))
        return ready

    def step(
        self,
        txns: list[MerchantTxn],
        labels: list[LabelIn],
        delay_s: float = 0.0,
        release_all: bool = False,
    ) -> list[Released]:
        """Take a micro-batch's transactions and labels; the transactions the order rule
        releases, in (event time, id) order, with their merchant features."""
        self._receive(txns, labels)
        out = []
        pending, next_label = self.header.pending, 0
        for txn in self._release(txns, delay_s, release_all):
            while next_label < len(pending) and pending[next_label].label_time <= txn.time:
                label = pending[next_label]
                self._set(label.merchant_id, apply_label(self.merchant(label.merchant_id), label))
                next_label += 1
            state = self.merchant(txn.merchant_id)
            event = TxnEvent(txn.transaction_id, txn.time, "", txn.merchant_id, 0.0)
            if state is not None and state.times and txn.time < state.times[-1]:
                _, features = update_merchant(copy.deepcopy(state), event)
                out.append(Released(txn, features, True))
                continue
            state, features = update_merchant(state, event)
            self._set(txn.merchant_id, state)
            out.append(Released(txn, features, False))
        del pending[:next_label]
        horizon = self.header.seen_time - MERCHANT_HISTORY_S
        self.header.unresolved = {k: v for k, v in self.header.unresolved.items() if v[0] > horizon}
        return out


__all__ = ["MERCHANT_WIDTH", "BucketHeader", "LabelIn", "MerchantBucket", "MerchantTxn", "Released"]
