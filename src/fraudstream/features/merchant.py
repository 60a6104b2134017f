"""Per-merchant features: transaction counts and fraud risk from labels already known.

Two pure, incremental functions share one state per merchant:

- ``apply_label(state, label)`` records a fraud verdict when it becomes known
  (at ``label.label_time``);
- ``update_merchant(state, txn)`` adds a transaction and returns its features.

Callers interleave both in time order, applying every label whose
``label_time`` is at or before a transaction's event time before that
transaction. So a label that arrives after a transaction can never change that
transaction's features: label delay is respected by construction.

The mature risks count over windows that end the maturity delay before the event
(``catalogue.MATURITY_DELAY_S``): their denominators hold only transactions old enough
for their labels to have arrived, so slow labels do not dilute them.

State is bounded to the merchant's horizon (the longest window plus the maturity delay)
of transactions and of labelled frauds. It is updated in place and returned; it holds
lists, dicts and floats only.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field

from fraudstream.features.catalogue import MATURITY_DELAY_S, MERCHANT_HISTORY_S, MERCHANT_WINDOWS
from fraudstream.features.events import LabelEvent, TxnEvent

_WINDOWS = tuple(seconds for _, seconds in MERCHANT_WINDOWS)
_STARTS = (*_WINDOWS, MERCHANT_HISTORY_S)
_NAN = float("nan")
_COMPACT_AT = 256


@dataclass(slots=True)
class MerchantState:
    """Event times of the merchant's transactions (oldest first; ``start[w]`` is each
    window's first index, the last one the horizon's) and event times of its known frauds
    (sorted), by id."""

    times: list[float] = field(default_factory=list)
    start: list[int] = field(default_factory=lambda: [0] * len(_STARTS))
    fraud_times: list[float] = field(default_factory=list)
    fraud_ids: dict[str, float] = field(default_factory=dict)


def _drop_old_frauds(state: MerchantState, now: float) -> None:
    """Forget known frauds whose transaction is at or before the horizon."""
    cut = bisect_right(state.fraud_times, now - MERCHANT_HISTORY_S)
    if cut:
        expired = set(state.fraud_times[:cut])
        del state.fraud_times[:cut]
        for txn_id in [k for k, t in state.fraud_ids.items() if t in expired]:
            del state.fraud_ids[txn_id]


def apply_label(state: MerchantState | None, label: LabelEvent) -> MerchantState:
    """Record a verdict on one of the merchant's transactions, as of ``label.label_time``.

    Idempotent: the same fraud label twice counts once. A later non-fraud verdict
    on the same transaction (an analyst overturning a chargeback) retracts it.
    A label on a transaction older than the horizon before ``label_time`` is ignored.
    """
    if state is None:
        state = MerchantState()
    known = state.fraud_ids.get(label.transaction_id)
    if not label.is_fraud:
        if known is not None:
            del state.fraud_ids[label.transaction_id]
            state.fraud_times.pop(bisect_right(state.fraud_times, known) - 1)
        return state
    if known is not None or label.txn_time <= label.label_time - MERCHANT_HISTORY_S:
        return state
    state.fraud_ids[label.transaction_id] = label.txn_time
    insort(state.fraud_times, label.txn_time)
    return state


def update_merchant(
    state: MerchantState | None, txn: TxnEvent
) -> tuple[MerchantState, tuple[float, ...]]:
    """Add ``txn`` to the merchant's state and return the merchant features, in catalogue order.

    Counts include ``txn``. Fraud risk over a window is the number of known
    frauds among the merchant's transactions in ``(t - window, t]`` divided by
    the number of its transactions in that window (so 0 when nothing is known).
    The mature risk is the same ratio over ``(t - delay - window, t - delay]``, NaN
    when the merchant had no transaction then.
    Transactions of one merchant must arrive in event-time order.
    """
    if state is None:
        state = MerchantState()
    now = txn.time
    times = state.times
    times.append(now)
    n = len(times)
    for w, seconds in enumerate(_STARTS):
        i, cutoff = state.start[w], now - seconds
        while times[i] <= cutoff:
            i += 1
        state.start[w] = i
    counts = [float(n - i) for i in state.start[: len(_WINDOWS)]]
    _drop_old_frauds(state, now)
    frauds = state.fraud_times
    risks = [
        min(1.0, (len(frauds) - bisect_right(frauds, now - seconds)) / count)
        for seconds, count in zip(_WINDOWS, counts, strict=True)
    ]
    matured = now - MATURITY_DELAY_S
    top, fraud_top = bisect_right(times, matured), bisect_right(frauds, matured)
    mature = []
    for seconds in _WINDOWS:
        old = bisect_right(times, matured - seconds, state.start[-1], top)
        if top == old:
            mature.append(_NAN)
            continue
        known = fraud_top - bisect_right(frauds, matured - seconds, 0, fraud_top)
        mature.append(min(1.0, known / (top - old)))
    oldest = state.start[-1]
    if oldest >= _COMPACT_AT and 2 * oldest >= n:
        del times[:oldest]
        state.start = [i - oldest for i in state.start]
    return state, (*counts, *risks, *mature)
