"""Genuine spending: every customer at their own merchants, in their daily rhythm."""

from __future__ import annotations

import numpy as np

from fraudstream.generator.draft import US_PER_DAY, US_PER_S, Draft, local_amounts
from fraudstream.generator.world import CITIES, FAVOURITES, World

# Relative activity per local hour of day (0-23): quiet nights, lunch and evening peaks.
HOURLY = np.array(
    [
        *(0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.2, 2.0, 2.6, 3.0, 3.6),
        *(4.5, 4.0, 3.5, 3.4, 3.6, 4.2, 4.8, 4.6, 3.8, 2.8, 1.8, 0.9),
    ]
)
# Customers prefer some of their merchants: slot k is chosen with weight 1/(k+1)^0.7.
_SLOT_P = 1.0 / np.arange(1, FAVOURITES + 1) ** 0.7
_SLOT_P /= _SLOT_P.sum()


def _event_times(
    rng: np.random.Generator, customer: np.ndarray, world: World, start_us: int, days: float
) -> np.ndarray:
    """Event times (us since epoch, UTC) inside ``[start, start + days)``.

    The hour is drawn in the customer's local time (offset = home longitude / 15 h),
    so rhythms follow the sun; times that fall outside the period wrap around.
    """
    n = len(customer)
    day = np.floor(rng.random(n) * days)
    hour = rng.choice(24, size=n, p=HOURLY / HOURLY.sum())
    offset_h = np.round(np.array([c.lon for c in CITIES]) / 15.0)[world.customer_city[customer]]
    seconds = (hour - offset_h) * 3600.0 + rng.random(n) * 3600.0
    offset_us = day * US_PER_DAY + seconds * US_PER_S
    span = days * US_PER_DAY
    times: np.ndarray = start_us + np.mod(offset_us, span).astype(np.int64)
    return times


def _where_ecom(ecom: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` on ecom rows, None elsewhere (object array)."""
    out = np.full(len(values), None, dtype=object)
    out[ecom] = values[ecom]
    return out


def genuine(
    rng: np.random.Generator,
    world: World,
    start_us: int,
    days: float,
    verification_rate: float = 0.0,
) -> Draft:
    """All genuine transactions of the period, unsorted.

    Each customer makes Poisson(rate * days) transactions, each with one of their
    cards at one of their favourite merchants; ecom purchases come from the
    customer's own device and home IP. A share ``verification_rate`` of the ecom
    ones are zero-amount authorisations (account verification, card-on-file set-up).
    """
    counts = rng.poisson(world.customer_rate * days)
    customer = np.repeat(np.arange(len(counts)), counts)
    n = len(customer)
    first_card = np.searchsorted(world.card_customer, np.arange(len(counts)))
    n_cards = np.bincount(world.card_customer, minlength=len(counts))
    card = first_card[customer] + (rng.random(n) * n_cards[customer]).astype(np.int64)
    slot = rng.choice(FAVOURITES, size=n, p=_SLOT_P)
    merchant = world.favourites[customer, slot]
    ecom = world.merchant_channel[merchant] == 1
    event_us = _event_times(rng, customer, world, start_us, days)
    amount = local_amounts(rng, world, merchant, world.customer_spend[customer])
    # Drawn last, so every earlier draw (and a history without verifications) keeps its values.
    amount[ecom & (rng.random(n) < verification_rate)] = 0.0
    return Draft(
        event_us=event_us,
        card=card,
        merchant=merchant,
        amount=amount,
        device=_where_ecom(ecom, world.customer_device[customer]),
        ip=_where_ecom(ecom, world.customer_ip[customer]),
        scenario=np.zeros(n, dtype=np.int8),
    )
