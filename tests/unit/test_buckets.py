"""Bucket keys spread over the stateful stages' partitions, checked against Spark itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)

from fraudstream.adapters.object_store import Location
from fraudstream.scoring.buckets import bucket_of, spark_partition, spread_keys
from fraudstream.scoring.run import check_spread
from fraudstream.settings import S3Settings


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("bucket-keys")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.adaptive.enabled", "false")  # as in a streaming query
        .getOrCreate()
    )
    yield session
    session.stop()


def test_the_hash_is_sparks_own(spark: SparkSession) -> None:
    values = [0, 1, 2, 3, 7, 42, 255, 65_535, 2**31 - 1, 2**31, 2**32 + 5, 2**62, -1, -(2**63)]
    frame = spark.createDataFrame([(v,) for v in values], "v bigint")
    for partitions in (2, 3, 8):
        got = frame.select("v", F.pmod(F.hash("v"), F.lit(partitions)).alias("p")).collect()
        assert {r.v: r.p for r in got} == {v: spark_partition(v, partitions) for v in values}


@pytest.mark.parametrize(("buckets", "partitions"), [(2, 2), (4, 2), (8, 2), (16, 4), (6, 3)])
def test_spread_keys_put_bucket_i_in_partition_i_mod_p(buckets: int, partitions: int) -> None:
    keys = spread_keys(buckets, partitions)
    assert len(set(keys)) == buckets
    assert min(keys) >= 0
    assert [spark_partition(k, partitions) for k in keys] == [
        i % partitions for i in range(buckets)
    ]
    # The bucket indexes as keys (what a spread of 1 gives) are uneven for these counts.
    assert spread_keys(buckets, 1) == tuple(range(buckets))


def test_the_index_keys_were_uneven_and_spread_keys_are_not() -> None:
    """The reason for the module: 4 bucket indexes over 2 partitions go 3 and 1, and 2 go
    both to one partition."""
    assert sorted(Counter(spark_partition(k, 2) for k in range(4)).values()) == [1, 3]
    assert len({spark_partition(k, 2) for k in range(2)}) == 1


def test_rows_grouped_by_bucket_key_meet_evenly_in_sparks_partitions(spark: SparkSession) -> None:
    """Grouped by ``bucket_of``, a stage's buckets (and so its rows) split evenly over the
    shuffle partitions: the hash partitioning a stateful operator's groups go through."""
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    ids = spark.range(0, 4_000, 1, 4).select(F.concat(F.lit("card-"), F.col("id")).alias("card_id"))
    for spread, expected in ((2, [2, 2]), (1, [1, 3])):
        keys = spread_keys(4, spread)
        placed = (
            ids.groupBy(bucket_of("card_id", keys).alias("bucket"))
            .count()
            .select("bucket", "count", F.spark_partition_id().alias("partition"))
            .collect()
        )
        assert sorted(r.bucket for r in placed) == sorted(keys)
        per_partition = Counter(r.partition for r in placed)
        assert sorted(per_partition.values()) == expected
        assert sum(r["count"] for r in placed) == 4_000
    # A merchant's rows and its keyed labels meet: one expression gives one key.
    keys = spread_keys(4, 2)
    pair = spark.createDataFrame([("m-1",), ("m-1",)], "merchant_id string")
    assert len({r.b for r in pair.select(bucket_of("merchant_id", keys).alias("b")).collect()}) == 1


def test_a_checkpoint_records_its_spread_once_started(tmp_path: Path) -> None:
    fresh = Location(str(tmp_path / "fresh"), S3Settings())
    assert check_spread(fresh, 2) == 2
    # Not started yet: a run with other partitions creates the Spark checkpoint with them.
    assert check_spread(fresh, 4) == 4
    assert fresh.list("bucket-spread") == ["bucket-spread/4"]
    fresh.write("spark/offsets/0", b"v1")
    assert check_spread(fresh, 8) == 4  # started: the keys name its state, they stay

    before = Location(str(tmp_path / "before"), S3Settings())
    before.write("spark/offsets/0", b"v1")  # started before spread keys: its indexes stay
    assert check_spread(before, 4) == 1
    assert before.list("bucket-spread") == []
