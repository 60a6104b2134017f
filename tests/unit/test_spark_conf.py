"""The scorer's Spark options that depend on where it checkpoints."""

from __future__ import annotations

from fraudstream.adapters.spark import S3A_CHECKPOINT_MANAGER, checkpoint_conf


def test_s3a_checkpoints_use_the_rename_free_file_manager_and_others_spark_default() -> None:
    key = "spark.sql.streaming.checkpointFileManagerClass"
    assert checkpoint_conf("s3a://fraudstream-checkpoints/checkpoints/scorer") == {
        key: S3A_CHECKPOINT_MANAGER
    }
    assert checkpoint_conf("file:///var/lib/fraudstream/checkpoint") == {}
    assert checkpoint_conf("checkpoints/scorer") == {}
