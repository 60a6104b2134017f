"""A Spark Python worker's heap frozen at each task's start (``adapters.spark.freeze_worker_heap``).

These run the real ``gc`` module in this process; each test leaves nothing frozen.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fraudstream.adapters import spark


class _Node:
    """A garbage-collectable object that can take part in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """Two objects referring to each other and to nothing else: only a collection frees them."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _thawed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    gc.collect()
    monkeypatch.setattr(spark, "_tasks_started", 0)
    yield
    gc.unfreeze()
    gc.collect()


def test_a_task_start_moves_the_live_heap_out_of_the_collections() -> None:
    assert gc.get_freeze_count() == 0
    spark.freeze_worker_heap()
    assert gc.get_freeze_count() > 1000  # the interpreter's modules, this test's objects
    # An object made after the freeze is collected as usual.
    after = _cycle()
    gc.collect()
    assert after() is None


def test_cycles_frozen_at_a_task_start_wait_for_the_periodic_full_collection() -> None:
    frozen = _cycle()
    spark.freeze_worker_heap()
    gc.collect()
    assert frozen() is not None, "a frozen cycle survives the collection after its task"
    for _ in range(spark.FULL_COLLECTION_EVERY - 2):
        spark.freeze_worker_heap()
    gc.collect()
    assert frozen() is not None
    spark.freeze_worker_heap()  # the FULL_COLLECTION_EVERY-th task: nothing frozen
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert frozen() is None


def test_a_mapinpandas_function_freezes_the_heap_when_its_task_starts() -> None:
    seen: list[int] = []

    def func(frames: Iterator[int]) -> Iterator[int]:
        seen.append(gc.get_freeze_count())
        yield from (f * 2 for f in frames)

    run = spark._task_start(func)
    assert gc.get_freeze_count() == 0
    assert list(run(iter([1, 2, 3]))) == [2, 4, 6]
    assert len(seen) == 1
    assert seen[0] > 0
