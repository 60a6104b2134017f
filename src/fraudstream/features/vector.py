"""One transaction's full feature vector from the per-entity states.

This is what the offline builder runs per row and what the streaming scorer
runs per event: transaction features, then card, then merchant features, in
the catalogue's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import CARD_FEATURES, FEATURES, MERCHANT_FEATURES
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant
from fraudstream.features.transaction import transaction_features


def feature_vector(
    txn: TxnEvent, card: Sequence[float], merchant: Sequence[float]
) -> tuple[float, ...]:
    """``txn``'s full feature vector in catalogue order: its transaction features, then
    ``card`` and ``merchant`` (the entity features ``update_card`` and ``update_merchant``
    returned for it). The offline builder, the stream and the API all assemble with it."""
    if len(card) != len(CARD_FEATURES) or len(merchant) != len(MERCHANT_FEATURES):
        raise ValueError(
            f"{len(card)} card and {len(merchant)} merchant features, expected "
            f"{len(CARD_FEATURES)} and {len(MERCHANT_FEATURES)}"
        )
    return (*transaction_features(txn), *card, *merchant)


def feature_matrix(
    txns: Sequence[TxnEvent],
    cards: Sequence[Sequence[float]],
    merchants: Sequence[Sequence[float]],
) -> np.ndarray:
    """``feature_vector`` of every row as a float64 matrix (rows aligned by position)."""
    rows = map(feature_vector, txns, cards, merchants)
    width = len(FEATURES)
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(txns) * width)
    return flat.reshape(len(txns), width)


@dataclass(slots=True)
class FeatureStore:
    """Per-card and per-merchant states of one replay (in memory, no I/O)."""

    cards: dict[str, CardState] = field(default_factory=dict)
    merchants: dict[str, MerchantState] = field(default_factory=dict)

    def observe_label(self, label: LabelEvent) -> None:
        """Record a verdict; call it once its ``label_time`` is reached in event time."""
        self.merchants[label.merchant_id] = apply_label(
            self.merchants.get(label.merchant_id), label
        )

    def features(self, txn: TxnEvent) -> tuple[float, ...]:
        """Update the card and merchant states with ``txn``; its features, in catalogue order."""
        card, card_features = update_card(self.cards.get(txn.card_id), txn)
        self.cards[txn.card_id] = card
        merchant, merchant_features = update_merchant(self.merchants.get(txn.merchant_id), txn)
        self.merchants[txn.merchant_id] = merchant
        return feature_vector(txn, card_features, merchant_features)
