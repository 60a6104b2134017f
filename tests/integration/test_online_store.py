"""Online store against the real Redis: states published by the stream read back exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fraudstream.adapters.online_store import OnlineStore, publish_states
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import STATE_TTL_S
from fraudstream.features.codec import encode_card
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant
from fraudstream.settings import Settings

pytestmark = pytest.mark.services("redis")

T0 = 1_760_000_000.0


@pytest.fixture
def store(settings: Settings) -> Iterator[OnlineStore]:
    """A store under a key prefix of this test's own."""
    redis = settings.redis.model_copy(update={"key_prefix": f"test-{uuid.uuid4().hex[:8]}"})
    store = OnlineStore(redis)
    yield store
    for key in store.client.scan_iter(f"{redis.key_prefix}:*"):
        store.client.delete(key)
    store.close()


def _replayed() -> tuple[dict[str, CardState], dict[str, MerchantState]]:
    """States after 200 transactions and a label, from the functions the stream calls."""
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    for i in range(200):
        card, merchant = f"card-{i % 7}", f"merchant-{i % 3}"
        txn = TxnEvent(f"t{i}", T0 + 97.0 * i, card, merchant, 5.0 + i % 13, "grocery", 48.1, 11.5)
        cards[card], _ = update_card(cards.get(card), txn)
        merchants[merchant], _ = update_merchant(merchants.get(merchant), txn)
        if i == 50:
            label = LabelEvent("t3", "merchant-0", T0 + 97.0 * 3, T0 + 97 * i, True)
            merchants["merchant-0"] = apply_label(merchants["merchant-0"], label)
    return cards, merchants


def test_published_states_read_back_exactly_and_expire(store: OnlineStore) -> None:
    cards, merchants = _replayed()
    written = publish_states(store, cards, merchants)
    assert written == len(cards) + len(merchants) == 10
    for card_id, card in cards.items():
        merchant_id = card.merchants[-1]
        states = store.get(card_id, merchant_id)
        assert states.card is not None
        assert states.merchant is not None
        assert encode_card(states.card) == encode_card(card)
        assert states.merchant == merchants[merchant_id]
    ttl = store.client.ttl(store.card_key("card-0"))
    assert STATE_TTL_S - 60 < ttl <= STATE_TTL_S
    assert publish_states(store, cards, merchants) == written  # idempotent rewrite


def test_unknown_and_undecodable_states_read_as_absent(store: OnlineStore) -> None:
    assert store.get("no-such-card", "no-such-merchant").card is None
    store.client.set(store.card_key("broken"), b"\x80\x04pickle")
    states = store.get("broken", "no-such-merchant")
    assert states.card is None
    assert states.merchant is None
