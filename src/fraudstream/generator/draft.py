"""Transactions under construction, column-wise, and their conversion to the contract.

A draft refers to entities by index (card, merchant); merchant attributes
(category, channel, place, currency) are filled in when the draft becomes an
Arrow table of the canonical transaction contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraudstream.generator.world import CATEGORIES, CHANNELS, CITIES, World
from fraudstream.schema import SCHEMA_VERSION, arrow_schema

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S


@dataclass(frozen=True)
class Draft:
    """Aligned columns, one row per transaction.

    ``event_us``: event time in microseconds since the Unix epoch (UTC).
    ``amount``: in the merchant's local currency, rounded to cents.
    ``device``/``ip``: str or None. ``scenario``: 0 genuine, else the scenario code.
    """

    event_us: np.ndarray
    card: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    scenario: np.ndarray

    def __len__(self) -> int:
        return len(self.event_us)

    @staticmethod
    def concat(parts: list[Draft]) -> Draft:
        return Draft(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in Draft.__dataclass_fields__
            )
        )

    def take(self, order: np.ndarray) -> Draft:
        return Draft(*(getattr(self, name)[order] for name in Draft.__dataclass_fields__))


def draft_from_lists(rows: dict[str, list[object]], scenario: int, *, device: bool = True) -> Draft:
    """A draft from per-incident Python lists (scenarios build small drafts this way)."""
    n = len(rows["event_us"])
    return Draft(
        event_us=np.asarray(rows["event_us"], dtype=np.int64),
        card=np.asarray(rows["card"], dtype=np.int64),
        merchant=np.asarray(rows["merchant"], dtype=np.int64),
        amount=np.asarray(rows["amount"], dtype=np.float64),
        device=np.array(rows["device"] if device else [None] * n, dtype=object),
        ip=np.array(rows["ip"] if device else [None] * n, dtype=object),
        scenario=np.full(n, scenario, dtype=np.int8),
    )


def local_amounts(
    rng: np.random.Generator, world: World, merchant: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Amounts at ``merchant`` for spenders of relative level ``scale``, in local currency.

    Log-normal around the category's median; ATM withdrawals are multiples of 10
    (at least 20) of the local currency; everything else is rounded to cents, >= 0.5.
    """
    cat = world.merchant_category[merchant]
    median = np.array([c.median_eur for c in CATEGORIES])[cat]
    sigma = np.array([c.sigma for c in CATEGORIES])[cat]
    fx = np.array([c.fx for c in CITIES])[world.merchant_city[merchant]]
    value = median * scale * np.exp(rng.normal(0.0, 1.0, len(merchant)) * sigma) * fx
    atm = np.array([c.channel == "atm" for c in CATEGORIES])[cat]
    value = np.where(atm, np.maximum(np.round(value / 10.0) * 10.0, 20.0), value)
    amounts: np.ndarray = np.maximum(np.round(value, 2), 0.5)
    return amounts


def _times(event_us: np.ndarray) -> pa.Array:
    return pa.array(event_us, type=pa.timestamp("us", tz="UTC"))


def to_table(draft: Draft, world: World, first_id: int, id_prefix: str) -> pa.Table:
    """The draft, in its current row order, as a table of the transaction contract.

    Transaction ids are ``{id_prefix}-{n:010d}`` numbered from ``first_id`` in row order.
    """
    m = draft.merchant
    cat = world.merchant_category[m]
    city = world.merchant_city[m]
    channel = np.array(CHANNELS, dtype=object)[world.merchant_channel[m]]
    ecom = channel == "ecom"
    numbers = pc.cast(pa.array(np.arange(first_id, first_id + len(draft))), pa.string())
    ids = pc.binary_join_element_wise(f"{id_prefix}-", pc.utf8_lpad(numbers, 10, "0"), "")
    columns = {
        "transaction_id": ids,
        "event_time": _times(draft.event_us),
        "card_id": pa.array(world.card_ids[draft.card], type=pa.string()),
        "merchant_id": pa.array(world.merchant_ids[m], type=pa.string()),
        "amount": pa.array(draft.amount, type=pa.float64()),
        "currency": pa.array(np.array([c.currency for c in CITIES], dtype=object)[city]),
        "customer_id": pa.array(world.customer_ids[world.card_customer[draft.card]]),
        "merchant_category": pa.array(np.array([c.mcc for c in CATEGORIES], dtype=object)[cat]),
        "channel": pa.array(channel, type=pa.string()),
        "country": pa.array(np.array([c.country for c in CITIES], dtype=object)[city]),
        "lat": pa.array(world.merchant_lat[m], mask=ecom, type=pa.float64()),
        "lon": pa.array(world.merchant_lon[m], mask=ecom, type=pa.float64()),
        "device_id": pa.array(draft.device, type=pa.string()),
        "ip": pa.array(draft.ip, type=pa.string()),
        "schema_version": pa.array(np.full(len(draft), SCHEMA_VERSION, dtype=np.int32)),
    }
    return pa.table(columns, schema=arrow_schema("transaction"))
