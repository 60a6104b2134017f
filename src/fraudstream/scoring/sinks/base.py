"""The sink contract: what one scorer output does with a micro-batch, and where it runs.

A sink writes from the executors. Most run inside the scoring stage's tasks
(``reads = "scored"``): a task scores its partition and hands each Arrow batch of it,
as a ``Partition``, to every such sink in turn, in the same Python worker, so the
scored rows never go back to the JVM to be read again. Per task the worker calls
``setup`` (open or reuse the worker's client), ``write`` for each ``Partition``, then
``flush`` (block until what was written is durable, or raise ``SinkError``); the
task's counts (rows scored, dead letters, the seconds each sink took) reach the driver
through an accumulator only after every ``flush`` returned.

Two kinds run after that job, each as a Spark job of its own:

- ``reads = "states"``: the entity states the stateful stages changed (the online
  store), written once the batch's scores are stored everywhere, so a reader never
  sees a state whose transaction has no stored score. Same ``setup``/``write``/``flush``,
  each ``Partition`` carrying ``states`` (``ExecutorJob``).
- ``reads = "frame"``: Spark's own writer over the scored rows (Parquet): ``save``
  plans the write on the driver and Spark runs it.

The driver only starts those jobs and waits for them, so its work per micro-batch does
not grow with the batch.

A dependency that is briefly unreachable is waited out where the write happens: each
sink retries a transient failure with ``adapters.retry`` under its ``retry`` policy
(reconnecting first), inside the task. Only when that budget is spent, or on an error
no wait can fix (credentials, schema), does the task fail; that fails the micro-batch,
and Spark replays it from its offsets: every write is idempotent by key, so a partition
written twice leaves what one write leaves.

Row shapes (``Partition``): ``scored`` is ``rows.SCORED_SCHEMA``, one row per scored
transaction; ``dead_letters`` has ``key``, ``value`` (the dead letter's bytes) and
``reason``; ``states`` has ``entity`` (``card`` or ``merchant``), ``id`` and ``state``
(``features.codec`` bytes).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import pandas as pd

from fraudstream.adapters.retry import RetryPolicy
from fraudstream.adapters.spark import PandasMap

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")


class SinkError(RuntimeError):
    """A sink refused a write; the micro-batch fails and Spark retries it from its offsets.

    ``transient``: the dependency did not answer in time (``adapters.retry`` retries it)."""

    transient: bool = False


@dataclass(frozen=True)
class Partition:
    """One Arrow batch of a task's rows, as a sink takes it (None: none of that kind)."""

    scored: pd.DataFrame | None = None
    dead_letters: pd.DataFrame | None = None
    states: pd.DataFrame | None = None


class Sink(ABC):
    """One output of the scorer. ``setup``/``write``/``flush`` run in a Python worker, once
    per task (a fresh copy of the sink each time: Spark unpickles it per task), so
    instance attributes set in ``setup`` live for one task; clients that should outlive
    it come from ``worker_client``."""

    name: ClassVar[str]
    reads: ClassVar[Literal["scored", "states", "frame"]] = "scored"
    """Where it runs: inside the scoring tasks, in a job over the changed states, or as
    Spark's writer over the scored rows (see the module's doc)."""
    retry: RetryPolicy = RetryPolicy()
    """How long a write waits out an unreachable dependency (set by the scorer)."""

    def setup(self) -> None:
        """Executor: before a task's first ``write``; opens or reuses clients."""

    def write(self, part: Partition) -> None:
        """Executor: one Arrow batch of the task's rows (hand them over, or buffer them)."""
        raise NotImplementedError(f"the {self.name} sink does not write from a task")

    def flush(self) -> None:
        """Executor: after a task's last ``write``; returns once it is all durable."""

    def save(self, scored: DataFrame, batch_id: int) -> None:
        """Driver (``reads = "frame"``): write the batch's scored rows with Spark's writer;
        running it runs the batch."""
        raise NotImplementedError(f"the {self.name} sink writes from the scoring tasks")

    def close(self) -> None:
        """Driver: the scorer stops (sinks that hold nothing on the driver do nothing)."""


class ExecutorJob:
    """``sink`` run over every partition of a frame in Spark tasks, once per micro-batch.

    ``mapInPandas`` hands each task its rows as Arrow batches (``as_part`` makes each a
    ``Partition``); each task adds its count to an accumulator and returns no row, and
    Spark's ``noop`` writer runs the job, so nothing but the accumulator's total comes
    back to the driver. The function is shipped to the JVM once (``PandasMap``), not per
    batch. A task Spark runs again counts again: ``run`` returns rows written, not
    distinct rows.
    """

    def __init__(
        self,
        spark: SparkSession,
        sink: Sink,
        as_part: Callable[[pd.DataFrame], Partition],
        columns: Sequence[str],
    ) -> None:
        written = self._written = spark.sparkContext.accumulator(0)

        def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            sink.setup()
            count = 0
            for rows in frames:
                if len(rows):
                    sink.write(as_part(rows))
                    count += len(rows)
            sink.flush()
            written.add(count)
            yield pd.DataFrame({"rows": pd.Series([], dtype="int64")})

        self._map = PandasMap(run, columns, "rows long")
        self._total = 0

    def run(self, frame: DataFrame) -> int:
        """Write ``frame`` (its columns named as given at construction); the rows written."""
        self._map.apply(frame).write.format("noop").mode("overwrite").save()
        total = int(self._written.value)
        written, self._total = total - self._total, total
        return written


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
