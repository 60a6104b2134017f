"""The sink contract: what one scorer output does with a micro-batch, and where it runs.

A sink takes the batch's DataFrames it needs (``frames``) and writes them from the
executors: for every partition of each frame, a Python worker calls ``setup`` (open
or reuse the worker's client), ``write`` for each Arrow batch of rows, then ``flush``
(block until what was written is durable, or raise ``SinkError``). The driver only
starts that Spark job and waits for it (``run``), so its work per micro-batch does not
grow with the batch: the rows written come back through an accumulator, not as rows.

A dependency that is briefly unreachable is waited out where the write happens: each
sink retries a transient failure with ``adapters.retry`` under its ``retry`` policy
(reconnecting first), inside the task. Only when that budget is spent, or on an error
no wait can fix (credentials, schema), does the task fail; that fails the micro-batch,
and Spark replays it from its offsets: every write is idempotent by key, so a partition
written twice leaves what one write leaves.

Row shapes (``MicroBatch``): ``scored`` is ``scoring.score_stage.SCORED_SCHEMA``, one
row per scored transaction; ``dead_letters`` has ``key``, ``value`` (the dead letter's
bytes) and ``reason``; ``states`` has ``entity`` (``card`` or ``merchant``), ``id`` and
``state`` (``features.codec`` bytes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pandas as pd

from fraudstream.adapters.retry import RetryPolicy

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

T = TypeVar("T")


class SinkError(RuntimeError):
    """A sink refused a write; the micro-batch fails and Spark retries it from its offsets.

    ``transient``: the dependency did not answer in time (``adapters.retry`` retries it)."""

    transient: bool = False


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch's outputs as Spark DataFrames (None: the batch has no such rows)."""

    batch_id: int
    scored: DataFrame | None
    dead_letters: DataFrame | None
    states: DataFrame | None


class Sink(ABC):
    """One output of the scorer. ``setup``/``write``/``flush`` run in a Python worker, once
    per partition (a fresh copy of the sink each time: Spark unpickles it per task), so
    instance attributes set in ``setup`` live for one partition; clients that should
    outlive it come from ``worker_client``."""

    name: ClassVar[str]
    retry: RetryPolicy = RetryPolicy()
    """How long a write waits out an unreachable dependency (set by the scorer)."""

    def frames(self, batch: MicroBatch) -> list[DataFrame]:
        """The DataFrames this sink writes (driver side; nothing runs yet)."""
        return []

    def setup(self) -> None:
        """Executor: before a partition's first ``write``; opens or reuses clients."""

    @abstractmethod
    def write(self, rows: pd.DataFrame) -> None:
        """Executor: one Arrow batch of a partition's rows (hand them over, or buffer them)."""

    def flush(self) -> None:
        """Executor: after a partition's last ``write``; returns once it is all durable."""

    def run(self, batch: MicroBatch) -> int:
        """Driver: write the batch from the executors; returns the rows written."""
        return sum(on_executors(frame, self) for frame in self.frames(batch))

    def close(self) -> None:
        """Driver: the scorer stops (sinks that hold nothing on the driver do nothing)."""


def on_executors(frame: DataFrame, sink: Sink) -> int:
    """Run ``sink`` over every partition of ``frame`` in Spark tasks; the rows written.

    ``mapInPandas`` hands each task its rows as Arrow batches; each task adds its count
    to an accumulator and returns no row, and Spark's ``noop`` writer runs the job, so
    nothing but the accumulator's total comes back to the driver. A task Spark runs again
    counts again: the total is rows written, not distinct rows.
    """
    written = frame.sparkSession.sparkContext.accumulator(0)

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sink.setup()
        count = 0
        for rows in frames:
            if len(rows):
                sink.write(rows)
                count += len(rows)
        sink.flush()
        written.add(count)
        yield pd.DataFrame({"rows": pd.Series([], dtype="int64")})

    frame.mapInPandas(run, "rows long").write.format("noop").mode("overwrite").save()
    return int(written.value)


_WORKER_CLIENTS: dict[tuple[Any, ...], Any] = {}
"""Clients of this Python worker process, kept across tasks and micro-batches (Spark
reuses its workers): a Kafka producer, a Postgres connection, a Redis pool per system."""


def worker_client(key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """The worker's client under ``key``, made on first use."""
    client = _WORKER_CLIENTS.get(key)
    if client is None:
        client = _WORKER_CLIENTS[key] = make()
    return client


def drop_worker_client(key: tuple[Any, ...]) -> Any:
    """Forget (and return) a client that failed, so the next task makes a new one."""
    return _WORKER_CLIENTS.pop(key, None)
