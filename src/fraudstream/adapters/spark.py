"""Spark session for the scorer: connector jars, S3A on the configured S3 server, RocksDB state.

Built inside a command (never at import). Locally Spark runs in ``local[N]`` with the
jars resolved from the packaged pom; on Kubernetes the same jars are baked into the
image and the Spark Operator supplies the master, so ``jars`` is left empty there.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudstream.settings import S3Settings, Settings, SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def s3a_conf(s3: S3Settings) -> dict[str, str]:
    """Hadoop S3A options for the configured endpoint (path-style for MinIO and most servers)."""
    conf = {
        "spark.hadoop.fs.s3a.endpoint": s3.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style).lower(),
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.endpoint.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        # Checkpoint commits are small and frequent: no multipart, no S3 Express probing.
        "spark.hadoop.fs.s3a.fast.upload": "true",
        "spark.hadoop.fs.s3a.change.detection.mode": "none",
    }
    if s3.access_key and s3.secret_key:
        conf["spark.hadoop.fs.s3a.access.key"] = s3.access_key.get_secret_value()
        conf["spark.hadoop.fs.s3a.secret.key"] = s3.secret_key.get_secret_value()
    return conf


S3A_CHECKPOINT_MANAGER = (
    "org.apache.spark.internal.io.cloud.AbortableStreamBasedCheckpointFileManager"
)
"""Writes each checkpoint file straight to its key (an S3 PUT is atomic) and aborts the upload
on failure, instead of Spark's default of a temporary file renamed into place, which S3A does
as a copy and a delete after several existence checks. From spark-hadoop-cloud (the pom)."""


def checkpoint_conf(checkpoint: str) -> dict[str, str]:
    """SQL options for a query checkpointing at ``checkpoint`` (the offset and commit logs
    and the state store's files): the rename-free file manager on ``s3a://``, else none."""
    if checkpoint.startswith("s3a://"):
        return {"spark.sql.streaming.checkpointFileManagerClass": S3A_CHECKPOINT_MANAGER}
    return {}


def session_conf(settings: Settings, spark: SparkSettings, jars: list[str]) -> dict[str, str]:
    """Every option the scorer's session sets (secrets included: never log the result)."""
    conf = {
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.port": str(spark.ui_port),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": spark.driver_memory,
        # Inference runs one thread per Python worker; Spark runs one worker per core.
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.python.worker.reuse": "true",
        **s3a_conf(settings.s3),
    }
    if jars:
        conf["spark.jars"] = ",".join(jars)
    return conf


def build_session(
    settings: Settings, spark: SparkSettings, app_name: str, local_jars: list[Path]
) -> SparkSession:
    """A SparkSession for the scorer; the Python workers use this interpreter (with pyarrow).

    ``local_jars``: the connector jars of a local run (none on Kubernetes, where the
    image holds them)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jars = [str(p) for p in local_jars]
    builder = SparkSession.builder.appName(app_name)
    if settings.platform.mode != "kubernetes":
        builder = builder.master(spark.master)
    for key, value in session_conf(settings, spark, jars).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


FULL_COLLECTION_EVERY = 200
"""Every this many tasks a Python worker's heap is not frozen (``freeze_worker_heap``), so
the collection after that task is a full one."""
_tasks_started = 0


def freeze_worker_heap() -> None:
    """At a task's start in a Spark Python worker: keep what the worker already holds out
    of the full garbage collection PySpark runs after every task.

    A reused Python worker calls ``gc.collect()`` after each task (``pyspark.daemon``).
    Most of its heap outlives every task (the imported modules, the models, the decoded
    card states), so each of those collections walks hundreds of thousands of objects
    that cannot be garbage: most of the scorer's Python CPU, and a wait on the batch's
    critical path whenever the next stage's task needs that worker. ``gc.freeze()`` moves
    the objects alive now (the last collection has just run) into the permanent
    generation, which collections skip; the collection after this task then looks only
    at what the task made. Reference counting still frees frozen objects; only reference
    cycles among them wait for the full collection every ``FULL_COLLECTION_EVERY`` tasks.
    """
    global _tasks_started
    _tasks_started += 1
    if _tasks_started % FULL_COLLECTION_EVERY:
        gc.freeze()
    else:
        gc.unfreeze()


def _task_start(func: Any) -> Any:
    """``func`` (a ``mapInPandas`` function) that first freezes the worker's heap."""

    def run(frames: Any) -> Any:
        freeze_worker_heap()
        return func(frames)

    return run


class PandasMap:
    """``DataFrame.mapInPandas`` with its function shipped to the JVM once.

    Each ``mapInPandas`` call pickles its function, builds a new JVM function object and
    resolves every input column against the frame: about a hundred calls into the JVM
    and most of a streaming driver's CPU per micro-batch. A ``PandasMap`` does that once
    for a fixed function, input columns and output schema; ``apply`` is then one call.
    The input columns are named (``F.col``), not resolved against one frame, so one map
    serves every micro-batch's frame of the same shape. Each task first freezes its
    worker's heap (``freeze_worker_heap``).
    """

    def __init__(self, func: Any, columns: Sequence[str], schema: StructType | str) -> None:
        from pyspark.sql import functions as F  # noqa: N812 (Spark's convention)
        from pyspark.sql.pandas.functions import pandas_udf
        from pyspark.util import PythonEvalType

        udf = pandas_udf(  # type: ignore[call-overload]
            _task_start(func),
            returnType=schema,
            functionType=PythonEvalType.SQL_MAP_PANDAS_ITER_UDF,
        )
        self._column = udf(*[F.col(c) for c in columns])

    def apply(self, frame: DataFrame) -> DataFrame:
        """``frame.mapInPandas(func, schema)``, without shipping ``func`` again."""
        from pyspark.sql import DataFrame

        jdf = frame._jdf.mapInPandas(self._column._jc, False, None)
        return DataFrame(jdf, frame.sparkSession)
