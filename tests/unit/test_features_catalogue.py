"""The catalogue is the single declaration: unique names, matching vectors, documented."""

from __future__ import annotations

from pathlib import Path

from fraudstream.features.card import update_card
from fraudstream.features.catalogue import (
    CARD_FEATURES,
    FEATURES,
    MERCHANT_FEATURES,
    TRANSACTION_FEATURES,
    catalogue_markdown,
    feature_names,
)
from fraudstream.features.events import TxnEvent
from fraudstream.features.merchant import update_merchant
from fraudstream.features.transaction import transaction_features

DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"
TXN = TxnEvent("t", 1_700_000_000.0, "c", "m", 5.0)


def test_names_are_unique_and_prefixed_by_entity() -> None:
    names = feature_names()
    assert len(names) == len(set(names))
    prefix = {"card": "card_", "merchant": "merchant_", "transaction": "txn_"}
    assert all(spec.name.startswith(prefix[spec.entity]) for spec in FEATURES)


def test_each_update_returns_exactly_its_declared_features() -> None:
    assert len(transaction_features(TXN)) == len(TRANSACTION_FEATURES)
    assert len(update_card(None, TXN)[1]) == len(CARD_FEATURES)
    assert len(update_merchant(None, TXN)[1]) == len(MERCHANT_FEATURES)


def test_a_zero_amount_is_marked() -> None:
    index = [spec.name for spec in TRANSACTION_FEATURES].index("txn_is_zero_amount")
    assert transaction_features(TXN._replace(amount=0.0))[index] == 1.0
    assert transaction_features(TXN)[index] == 0.0


def test_windows_render_as_people_write_them() -> None:
    windows = {spec.name: spec.window for spec in FEATURES}
    assert windows["card_count_1h"] == "1h"
    assert windows["card_count_24h"] == "24h"
    assert windows["merchant_count_1d"] == "24h"
    assert windows["merchant_count_7d"] == "7d"
    assert windows["txn_amount"] == "-"


def test_docs_hold_the_generated_catalogue() -> None:
    assert catalogue_markdown() in DOC.read_text(), (
        "docs/model.md is out of date: paste `python -c 'from fraudstream.features.catalogue "
        "import catalogue_markdown; print(catalogue_markdown())'` into it"
    )
