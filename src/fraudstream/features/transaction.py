"""Features of the transaction alone (no state), and the full feature vector."""

from __future__ import annotations

from fraudstream.features.catalogue import DAY, HOUR
from fraudstream.features.events import TxnEvent

_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
_NIGHT_END_HOUR = 6


def transaction_features(txn: TxnEvent) -> tuple[float, ...]:
    """Amount, hour of day, weekend and night flags (from the event time in UTC), and
    whether the amount is zero (an authorisation without a purchase)."""
    hour = int(txn.time // HOUR) % 24
    weekday = (int(txn.time // DAY) + _EPOCH_WEEKDAY) % 7
    return (
        txn.amount,
        float(hour),
        1.0 if weekday >= 5 else 0.0,
        1.0 if hour < _NIGHT_END_HOUR else 0.0,
        1.0 if txn.amount == 0.0 else 0.0,
    )
