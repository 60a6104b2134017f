"""The offline training-set builder: replay history through the streaming feature functions.

Transactions are replayed in event-time order (ties broken by transaction_id)
through the per-entity update functions the stream calls (``update_card``,
``update_merchant``); each label is applied at its ``label_time``,
before every transaction whose event time is at or after it. A row's features
therefore depend only on transactions up to and including it and on labels
known at its event time: the training set is point-in-time correct.

Row shape in: the transaction contract (``transaction_id``, ``event_time``
tz-aware UTC, ``card_id``, ``merchant_id``, ``amount``, optional
``merchant_category``, ``lat``, ``lon``, ...) and the labels
(``transaction_id``, ``is_fraud``, ``fraud_scenario``, ``label_time``).
Row shape out: ``transaction_id, event_time, card_id`` + one column per feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import (
    feature_names,
)
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant
from fraudstream.features.vector import feature_matrix

ProgressCallback = Callable[[int], None]
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def epoch_column(values: pd.Series) -> np.ndarray:
    """Epoch seconds (float64) of a tz-aware datetime column, as ``events.epoch_seconds``
    computes them (whole microseconds / 1e6); a naive column is refused."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"column {values.name!r} must be timezone-aware UTC, got {values.dtype}")
    micros = (values - _EPOCH) // pd.Timedelta(microseconds=1)
    return np.asarray(micros, dtype=np.int64) / 1e6


def _optional(frame: pd.DataFrame, column: str) -> list[Any]:
    """The column as a list with None where missing (or all None when the column is absent)."""
    if column not in frame.columns:
        return [None] * len(frame)
    values = frame[column]
    listed: list[Any] = values.astype(object).where(values.notna(), None).tolist()
    return listed


def label_events(transactions: pd.DataFrame, labels: pd.DataFrame) -> list[LabelEvent]:
    """Labels joined to their transaction's merchant and time, in ``label_time`` order.

    A label on an unknown transaction is skipped (the merchant cannot be known). The
    merchant and time are the transaction's, whatever keys the label carries.
    """
    if labels.empty:
        return []
    txn = transactions[["transaction_id", "merchant_id"]].assign(
        txn_time=epoch_column(transactions["event_time"])
    )
    verdicts = labels[["transaction_id", "label_time", "is_fraud"]]
    joined = verdicts.merge(txn, on="transaction_id", how="inner")
    joined = joined.assign(label_s=epoch_column(joined["label_time"]))
    joined = joined.sort_values(["label_s", "txn_time", "transaction_id"], kind="stable")
    return [
        LabelEvent(str(i), str(m), float(t), float(lt), bool(f))
        for i, m, t, lt, f in zip(
            joined["transaction_id"],
            joined["merchant_id"],
            joined["txn_time"],
            joined["label_s"],
            joined["is_fraud"],
            strict=True,
        )
    ]


def _events(txns: pd.DataFrame) -> list[TxnEvent]:
    columns = (
        txns["transaction_id"].astype(str).tolist(),
        epoch_column(txns["event_time"]).tolist(),
        txns["card_id"].astype(str).tolist(),
        txns["merchant_id"].astype(str).tolist(),
        txns["amount"].astype(np.float64).tolist(),
        _optional(txns, "merchant_category"),
        _optional(txns, "lat"),
        _optional(txns, "lon"),
    )
    return [TxnEvent(*row) for row in zip(*columns, strict=True)]


def _entity_order(keys: list[str]) -> np.ndarray:
    """Positions grouped by entity, each group in the original (event-time) order."""
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    return np.argsort(codes, kind="stable")


def _card_pass(events: list[TxnEvent], tick: Callable[[int], None]) -> list[tuple[float, ...]]:
    """Card features of every event, one card at a time (its state stays hot, then goes)."""
    rows: list[tuple[float, ...]] = [()] * len(events)
    state: CardState | None = None
    current = None
    for i, k in enumerate(_entity_order([e.card_id for e in events]).tolist()):
        txn = events[k]
        if txn.card_id != current:
            state, current = None, txn.card_id
            tick(i)
        state, rows[k] = update_card(state, txn)
    return rows


def _merchant_pass(
    events: list[TxnEvent], verdicts: list[LabelEvent], tick: Callable[[int], None]
) -> list[tuple[float, ...]]:
    """Merchant features, one merchant at a time, its labels applied at their label_time."""
    pending: dict[str, list[LabelEvent]] = {}
    for verdict in verdicts:  # already in label_time order
        pending.setdefault(verdict.merchant_id, []).append(verdict)
    rows: list[tuple[float, ...]] = [()] * len(events)
    state: MerchantState | None = None
    current, queue, next_label = None, [], 0
    for i, k in enumerate(_entity_order([e.merchant_id for e in events]).tolist()):
        txn = events[k]
        if txn.merchant_id != current:
            current, state, next_label = txn.merchant_id, None, 0
            queue = pending.get(current, [])
            tick(i)
        while next_label < len(queue) and queue[next_label].label_time <= txn.time:
            state = apply_label(state, queue[next_label])
            next_label += 1
        state, rows[k] = update_merchant(state, txn)
    return rows


def build_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    on_progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Feature rows for every transaction, point-in-time correct (see the module doc).

    Cards and merchants are independent entities, so each is replayed on its own,
    in event time, through the same update functions the stream calls; the result
    equals one global replay (a test compares them value for value). Deterministic
    and free of I/O. ``on_progress(rows_done)`` is called as work advances.
    """
    txns = transactions.sort_values(["event_time", "transaction_id"], kind="stable")
    txns = txns.reset_index(drop=True)
    events = _events(txns)
    verdicts = label_events(txns, labels) if labels is not None else []
    n = len(events)

    def ticker(offset: int) -> Callable[[int], None]:
        """Report rows done about every 20,000 rows: each pass counts for half of them."""
        due = [0]

        def tick(i: int) -> None:
            if on_progress is not None and i >= due[0]:
                on_progress(offset + i // 2)
                due[0] = i + 20_000

        return tick

    card = _card_pass(events, ticker(0))
    merchant = _merchant_pass(events, verdicts, ticker(n // 2))
    matrix = feature_matrix(events, card, merchant)
    if on_progress is not None:
        on_progress(n)
    out = pd.DataFrame(matrix, columns=feature_names())
    out.insert(0, "card_id", txns["card_id"].astype(str))
    out.insert(0, "event_time", txns["event_time"])
    out.insert(0, "transaction_id", txns["transaction_id"].astype(str))
    return out


def attach_labels(
    features: pd.DataFrame, labels: pd.DataFrame, known_at: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Add ``is_fraud`` (0/1), ``fraud_scenario`` and ``label_time`` to feature rows.

    With ``known_at``, a label whose ``label_time`` is after it is treated as not yet
    known (the row counts as genuine), as it would have been at that moment.
    """
    cols = [
        c for c in ("transaction_id", "is_fraud", "fraud_scenario", "label_time") if c in labels
    ]
    known = labels[cols].sort_values("label_time", kind="stable")
    if known_at is not None:
        known = known[known["label_time"] <= known_at]
    known = known.drop_duplicates("transaction_id", keep="last")
    out = features.merge(known, on="transaction_id", how="left")
    out["is_fraud"] = out["is_fraud"].eq(True).astype(np.int8)
    if "fraud_scenario" not in out:
        out["fraud_scenario"] = None
    return out
