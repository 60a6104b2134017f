"""Per-card features: one incremental update per transaction, in event time.

``update_card`` is the single definition used by the offline training-set
builder and by the streaming scorer. It does no I/O and reads no clock.

State is bounded: only the card's transactions of the last 30 days are kept,
so a card idle for 30 days has state equivalent to a new card (and the stream
may drop it by TTL without changing any feature). Transactions of one card must
arrive in event-time order.

For speed the state is updated in place and returned; callers keep only the
returned state. It holds lists, dicts and floats only, so it serialises as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fraudstream.features.catalogue import CARD_HISTORY_S, CARD_WINDOWS, DAY, HOUR
from fraudstream.features.events import TxnEvent

NAN = math.nan
_WINDOWS = tuple(seconds for _, seconds in CARD_WINDOWS)
_I_1H, _I_24H, _I_30D = _WINDOWS.index(HOUR), _WINDOWS.index(DAY), len(_WINDOWS) - 1
_EARTH_KM = 6371.0088
_MIN_SPEED_S = 60.0
_COMPACT_AT = 64


@dataclass(slots=True)
class CardState:
    """A card's last 30 days: parallel lists of its transactions, oldest first.

    ``start[w]`` is the index of the oldest transaction inside window ``w`` and
    ``sums[w]`` the amount sum of that window; ``sumsq`` is the 30-day sum of
    squared amounts. The dicts count merchants (1h, 24h, 30d) and categories (30d).
    ``located`` is (time, lat, lon) of the last transaction with a location.
    """

    times: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    located: tuple[float, float, float] | None = None
    start: list[int] = field(default_factory=lambda: [0] * len(_WINDOWS))
    sums: list[float] = field(default_factory=lambda: [0.0] * len(_WINDOWS))
    sumsq: float = 0.0
    merchants_1h: dict[str, int] = field(default_factory=dict)
    merchants_24h: dict[str, int] = field(default_factory=dict)
    merchants_30d: dict[str, int] = field(default_factory=dict)
    categories_30d: dict[str, int] = field(default_factory=dict)


def _decrement(counts: dict[str, int], key: str | None) -> None:
    if key is None:
        return
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _expire(state: CardState, now: float) -> None:
    """Move every window's start past transactions at or before ``now - window``."""
    times, amounts = state.times, state.amounts
    n = len(times)
    for w, seconds in enumerate(_WINDOWS):
        i = state.start[w]
        cutoff = now - seconds
        while i < n and times[i] <= cutoff:
            amount = amounts[i]
            state.sums[w] -= amount
            if w == _I_1H:
                _decrement(state.merchants_1h, state.merchants[i])
            elif w == _I_24H:
                _decrement(state.merchants_24h, state.merchants[i])
            elif w == _I_30D:
                state.sumsq -= amount * amount
                _decrement(state.merchants_30d, state.merchants[i])
                _decrement(state.categories_30d, state.categories[i])
            i += 1
        state.start[w] = i


def _compact(state: CardState) -> None:
    """Drop expired list entries and recompute the sums exactly (no float drift)."""
    cut = state.start[_I_30D]
    for column in (state.times, state.amounts, state.merchants, state.categories):
        del column[:cut]
    state.start = [i - cut for i in state.start]
    state.sums = [math.fsum(state.amounts[i:]) for i in state.start]
    state.sumsq = math.fsum(a * a for a in state.amounts)


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _location(state: CardState, txn: TxnEvent) -> tuple[float, float]:
    """Distance (km) and speed (km/h) from the last located transaction of the last 30 days."""
    last = state.located
    if txn.lat is None or txn.lon is None or last is None or last[0] <= txn.time - CARD_HISTORY_S:
        return NAN, NAN
    km = _haversine_km(last[1], last[2], txn.lat, txn.lon)
    return km, km / (max(txn.time - last[0], _MIN_SPEED_S) / HOUR)


def _history(state: CardState, txn: TxnEvent) -> tuple[float, float, float]:
    """Amount ratio and z-score against the earlier 30 days, seconds since the previous."""
    n_prev = len(state.times) - state.start[_I_30D]
    if n_prev == 0:
        return NAN, NAN, NAN
    mean = state.sums[_I_30D] / n_prev
    ratio = txn.amount / mean if mean > 0 else NAN
    zscore = NAN
    if n_prev >= 2:
        var = state.sumsq / n_prev - mean * mean
        if var > 1e-9 * max(1.0, mean * mean):
            zscore = (txn.amount - mean) / math.sqrt(var)
    return ratio, zscore, txn.time - state.times[-1]


def _append(state: CardState, txn: TxnEvent) -> None:
    amount, merchant, category = txn.amount, txn.merchant_id, txn.merchant_category
    state.times.append(txn.time)
    state.amounts.append(amount)
    state.merchants.append(merchant)
    state.categories.append(category)
    if txn.lat is not None and txn.lon is not None:
        state.located = (txn.time, txn.lat, txn.lon)
    sums = state.sums
    for w in range(len(sums)):
        sums[w] += amount
    state.sumsq += amount * amount
    for counts in (state.merchants_1h, state.merchants_24h, state.merchants_30d):
        counts[merchant] = counts.get(merchant, 0) + 1
    if category is not None:
        state.categories_30d[category] = state.categories_30d.get(category, 0) + 1


def update_card(state: CardState | None, txn: TxnEvent) -> tuple[CardState, tuple[float, ...]]:
    """Add ``txn`` to the card's state and return the card features, in catalogue order.

    The features describe the card as of ``txn.time`` with ``txn`` included in
    the windowed counts and sums; the 30-day ratio and z-score compare the amount
    with the *earlier* transactions only. Deterministic: the same sequence of
    transactions always gives the same features.
    """
    if state is None:
        state = CardState()
    _expire(state, txn.time)
    ratio, zscore, since_prev = _history(state, txn)
    distance, speed = _location(state, txn)
    new_merchant = 0.0 if txn.merchant_id in state.merchants_30d else 1.0
    category = txn.merchant_category
    new_category = NAN if category is None else float(category not in state.categories_30d)
    _append(state, txn)
    n = len(state.times)
    zero_24h = float(state.amounts[state.start[_I_24H] :].count(0.0))
    windowed: list[float] = []
    for w in range(len(_WINDOWS)):
        count = n - state.start[w]
        windowed += (float(count), state.sums[w], state.sums[w] / count)
    if state.start[_I_30D] >= _COMPACT_AT and 2 * state.start[_I_30D] >= n:
        _compact(state)
    return state, (
        *windowed,
        ratio,
        zscore,
        since_prev,
        float(len(state.merchants_1h)),
        float(len(state.merchants_24h)),
        new_merchant,
        new_category,
        distance,
        speed,
        zero_24h,
    )


__all__ = ["CardState", "update_card"]
