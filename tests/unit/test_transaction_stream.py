"""The stream adapter's clockwork: pacing and delayed labels (no broker needed)."""

from __future__ import annotations

import time

from fraudstream.adapters.transaction_stream import Pacer, _PendingLabels


def test_the_pacer_holds_the_rate() -> None:
    pacer = Pacer(rate=200.0)
    for sent in range(1, 41):
        pacer.wait(sent)
    elapsed = time.monotonic() - pacer.started
    assert 0.19 <= elapsed < 0.6  # 40 records at 200/s take 0.2 s


def test_an_unpaced_sender_never_sleeps() -> None:
    pacer = Pacer(rate=None)
    start = time.monotonic()
    for sent in range(1, 100_001):
        pacer.wait(sent)
    assert time.monotonic() - start < 0.5


def test_labels_come_out_when_due_in_due_order() -> None:
    pending = _PendingLabels()
    pending.add(5.0, b"b", {"transaction_id": "b"})
    pending.add(1.0, b"a", {"transaction_id": "a"})
    pending.add(5.0, b"c", {"transaction_id": "c"})
    assert list(pending.due(0.5)) == []
    assert [k for k, _ in pending.due(1.0)] == [b"a"]
    assert [k for k, _ in pending.due(10.0)] == [b"b", b"c"]
    assert pending.heap == []
