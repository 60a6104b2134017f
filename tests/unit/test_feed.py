"""The stream adapter's clockwork: pacing and delayed labels (no broker needed)."""

from __future__ import annotations

import time

from fraudstream.services.feed import Pacer, _PendingLabels


def test_the_pacer_holds_the_rate() -> None:
    pacer = Pacer(rate=200.0)
    for sent in range(1, 41):
        pacer.wait(sent)
    elapsed = time.monotonic() - pacer.started
    assert elapsed >= 0.195  # 40 records at 200/s take at least 0.2 s
    assert elapsed < 5.0  # and do not wait for ever


def test_labels_come_out_when_due_in_due_order() -> None:
    pending = _PendingLabels()
    pending.add(5.0, b"b", {"transaction_id": "b"})
    pending.add(1.0, b"a", {"transaction_id": "a"})
    pending.add(5.0, b"c", {"transaction_id": "c"})
    assert list(pending.due(0.5)) == []
    assert [k for k, _ in pending.due(1.0)] == [b"a"]
    assert [k for k, _ in pending.due(10.0)] == [b"b", b"c"]
    assert pending.heap == []
