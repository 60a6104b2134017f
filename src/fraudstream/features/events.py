"""The events the feature functions consume, in the shape the hot path wants.

Times are float seconds since the Unix epoch (UTC), taken from the event: the
feature functions never look at a clock. ``from_record`` converts the canonical
transaction (timezone-aware ``event_time``) into this shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple


class TxnEvent(NamedTuple):
    """One transaction as the feature functions see it.

    ``time`` is the event time in epoch seconds (UTC). Optional fields of the
    contract are None when absent; only the ones features read are carried.
    """

    transaction_id: str
    time: float
    card_id: str
    merchant_id: str
    amount: float
    merchant_category: str | None = None
    lat: float | None = None
    lon: float | None = None


class LabelEvent(NamedTuple):
    """A fraud verdict on one transaction, keyed for its merchant.

    ``txn_time`` is the labelled transaction's event time and ``label_time``
    when the verdict became known (both epoch seconds, UTC). A label only
    affects transactions whose event time is at or after ``label_time``.
    """

    transaction_id: str
    merchant_id: str
    txn_time: float
    label_time: float
    is_fraud: bool


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_seconds(value: datetime) -> float:
    """Epoch seconds of a timezone-aware datetime, truncated to whole microseconds.

    Whole microseconds divided by 1e6 is the one conversion every path uses, so the
    offline builder and the stream produce bit-identical times. A naive datetime is refused.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"event time {value!r} has no timezone; expected UTC")
    return int((value - _EPOCH) // _MICROSECOND) / 1e6


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _optional_str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def from_record(record: Mapping[str, Any] | Any) -> TxnEvent:
    """The TxnEvent of one canonical transaction: a ``schema.Transaction``, or a mapping of
    its fields (optional keys may be missing or NaN; ``event_time`` aware, or epoch seconds).

    The one conversion the stream, the API and the tests use; the offline builder does the
    same column by column over a frame (``features.replay``).
    """
    get: Callable[[str], Any] = (
        record.get if isinstance(record, Mapping) else lambda name: getattr(record, name, None)
    )
    event_time = get("event_time")
    time = event_time if isinstance(event_time, float) else epoch_seconds(event_time)
    return TxnEvent(
        transaction_id=str(get("transaction_id")),
        time=time,
        card_id=str(get("card_id")),
        merchant_id=str(get("merchant_id")),
        amount=float(get("amount")),
        merchant_category=_optional_str(get("merchant_category")),
        lat=_optional_float(get("lat")),
        lon=_optional_float(get("lon")),
    )
