"""One transaction's full feature vector from the per-entity states.

This is what the offline builder runs per row and what the streaming scorer
runs per event: transaction features, then card, then merchant features, in
the catalogue's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fraudstream.features.card import CardState, update_card
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant
from fraudstream.features.transaction import transaction_features


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
        return (*transaction_features(txn), *card_features, *merchant_features)
