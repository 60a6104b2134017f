"""Merchant features in the stream: one book of merchant states, advanced once per micro-batch.

Merchants are global (every card bucket sees every merchant), so their states cannot
live in the card buckets. They live in a ``MerchantBook``, advanced once per
micro-batch by the merchant stage (``scoring.merchant_stage``, one Spark task), after
the card stage, with the batch's transactions sorted by
(event time, transaction id) and the fraud labels known so far, through the same
``apply_label`` and ``update_merchant`` the offline builder calls:

- a label is applied before the first transaction whose event time is at or after
  its ``label_time``, exactly the offline rule, so a label never changes the
  features of a transaction that happened before it became known;
- a label is only known to the stream once it is in Postgres ``labels`` (written by
  ``fraudstream ingest-labels``) and its transaction is in ``transactions_raw`` or in
  the batch;
  a label that arrives after the stream has passed its ``label_time`` takes effect
  from the next micro-batch on (the offline builder, knowing every label, applies it
  from ``label_time`` exactly: the difference is the label ingestion delay);
- a transaction older than its merchant's latest one (late across micro-batches) is
  scored on a copy of the merchant's state and not added to it.

The book is saved after every micro-batch under the batch id (``to_bytes``) and a
restarted scorer loads the save of the batch before the one Spark replays, so a
replayed batch sees exactly the state its first attempt saw: no transaction is
counted twice.
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass, field

from fraudstream.features.catalogue import HISTORY_S, MERCHANT_FEATURES
from fraudstream.features.codec import decode_merchant, encode_merchant
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant

MERCHANT_WIDTH = len(MERCHANT_FEATURES)
_FORMAT = 1
_U32 = struct.Struct("<I")


def _label_order(label: LabelEvent) -> tuple[float, float, str]:
    """The offline builder's label order: label time, then transaction time, then id."""
    return (label.label_time, label.txn_time, label.transaction_id)


@dataclass
class MerchantBook:
    """Every merchant's state, the labels not yet applied and the label read cursor.

    ``pending`` is kept in label order; ``cursor`` is the ``labels.ingested_at``
    (epoch seconds) up to which labels have been read; ``unresolved`` holds labels
    whose transaction the scorer has not seen yet (id -> (label_time, is_fraud)).
    """

    merchants: dict[str, MerchantState] = field(default_factory=dict)
    pending: list[LabelEvent] = field(default_factory=list)
    unresolved: dict[str, tuple[float, bool]] = field(default_factory=dict)
    cursor: float = 0.0
    last_time: float = 0.0

    def add_labels(self, labels: list[LabelEvent]) -> None:
        """Queue labels (a label seen again replaces the queued one: apply_label is idempotent)."""
        if not labels:
            return
        fresh = {label.transaction_id: label for label in labels}
        kept = [p for p in self.pending if p.transaction_id not in fresh]
        self.pending = sorted(kept + list(fresh.values()), key=_label_order)

    def resolve(self, events: list[TxnEvent]) -> None:
        """Queue the waiting labels (``unresolved``) whose transaction is among ``events``.

        The stage meets a batch's transactions before they reach ``transactions_raw``, so
        a label of one of them resolves here, before the batch advances the book.
        """
        if not self.unresolved:
            return
        found = []
        for txn in events:
            waiting = self.unresolved.pop(txn.transaction_id, None)
            if waiting is not None:
                label_time, is_fraud = waiting
                found.append(
                    LabelEvent(txn.transaction_id, txn.merchant_id, txn.time, label_time, is_fraud)
                )
        self.add_labels(found)

    def advance(self, events: list[TxnEvent]) -> tuple[list[tuple[float, ...]], list[bool]]:
        """Merchant features of ``events`` (any order), applying due labels first.

        Returns the features and late flags aligned with ``events``.
        """
        order = sorted(range(len(events)), key=lambda i: (events[i].time, events[i].transaction_id))
        rows: list[tuple[float, ...]] = [()] * len(events)
        late = [False] * len(events)
        next_label = 0
        for i in order:
            txn = events[i]
            while (
                next_label < len(self.pending) and self.pending[next_label].label_time <= txn.time
            ):
                label = self.pending[next_label]
                self.merchants[label.merchant_id] = apply_label(
                    self.merchants.get(label.merchant_id), label
                )
                next_label += 1
            state = self.merchants.get(txn.merchant_id)
            if state is not None and state.times and txn.time < state.times[-1]:
                _, rows[i] = update_merchant(copy.deepcopy(state), txn)
                late[i] = True
                continue
            self.merchants[txn.merchant_id], rows[i] = update_merchant(state, txn)
            self.last_time = max(self.last_time, txn.time)
        del self.pending[:next_label]
        self._expire()
        return rows, late

    def _expire(self) -> None:
        """Forget merchants idle for the history horizon and labels that can no longer count."""
        horizon = self.last_time - HISTORY_S
        idle = [m for m, s in self.merchants.items() if not s.times or s.times[-1] <= horizon]
        for merchant_id in idle:
            if not self.merchants[merchant_id].fraud_ids:
                del self.merchants[merchant_id]
        self.unresolved = {k: v for k, v in self.unresolved.items() if v[0] > horizon}

    def to_bytes(self) -> bytes:
        """The whole book: a JSON header (cursor, labels) and one codec blob per merchant."""
        header = json.dumps(
            {
                "format": _FORMAT,
                "cursor": self.cursor,
                "last_time": self.last_time,
                "pending": [list(p) for p in self.pending],
                "unresolved": self.unresolved,
                "merchants": list(self.merchants),
            }
        ).encode()
        parts = [_U32.pack(len(header)), header]
        for state in self.merchants.values():
            blob = encode_merchant(state)
            parts += [_U32.pack(len(blob)), blob]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerchantBook:
        (size,) = _U32.unpack_from(data, 0)
        header = json.loads(data[4 : 4 + size])
        if header.get("format") != _FORMAT:
            raise ValueError(f"merchant book format {header.get('format')!r} is not {_FORMAT}")
        pos = 4 + size
        merchants: dict[str, MerchantState] = {}
        for merchant_id in header["merchants"]:
            (n,) = _U32.unpack_from(data, pos)
            merchants[merchant_id] = decode_merchant(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        return cls(
            merchants=merchants,
            pending=[
                LabelEvent(str(a), str(b), c, d, bool(e)) for a, b, c, d, e in header["pending"]
            ],
            unresolved={k: (float(v[0]), bool(v[1])) for k, v in header["unresolved"].items()},
            cursor=float(header["cursor"]),
            last_time=float(header["last_time"]),
        )


__all__ = ["MERCHANT_WIDTH", "MerchantBook"]
