"""One transaction's full feature vector: its transaction features, then the card and
merchant features ``update_card`` and ``update_merchant`` gave it, in the catalogue's order.

The offline builder, the streaming scorer and the API all assemble vectors here.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from fraudstream.features.catalogue import CARD_FEATURES, FEATURES, MERCHANT_FEATURES
from fraudstream.features.events import TxnEvent
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
