"""Bucket keys: the grouping key each card or merchant bucket has in Spark's state.

A stateful stage groups its rows by bucket, and Spark runs each group in partition
``pmod(murmur3(key, seed 42), P)`` of ``P = spark.sql.shuffle.partitions`` (its hash
partitioning). With the bucket's index as its key, a handful of buckets land unevenly:
4 buckets over 2 partitions go 3 and 1, and 2 buckets both go to one partition, so one
core runs the whole stage while the others wait. *Spread* keys are chosen so that bucket
``i`` lands in partition ``i mod P``: every partition holds ``N / P`` buckets, give or take
one, and so, with cards and merchants hashed evenly over the buckets, its share of the rows.

The keys are part of the state (a bucket's state is stored under its key), so they are
fixed for a checkpoint's life together with the ``P`` they were spread over, which the
checkpoint records (``scoring.run.check_spread``). Spread over one partition the keys are the
bucket indexes, which is what checkpoints written before spread keys use.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)

HASH_SEED = 42
"""The seed of Spark's hash partitioning (``HashPartitioning`` uses ``Murmur3Hash``'s)."""

_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def _mix(h1: int, word: int) -> int:
    k1 = _rotl((word * 0xCC9E2D51) & _MASK, 15) * 0x1B873593 & _MASK
    h1 = _rotl(h1 ^ k1, 13)
    return (h1 * 5 + 0xE6546B64) & _MASK


def spark_hash_long(value: int, seed: int = HASH_SEED) -> int:
    """Spark's ``hash()`` of a ``bigint`` (Murmur3 x86 32-bit over its two 32-bit halves),
    as the signed 32-bit integer Spark returns."""
    v = value & 0xFFFFFFFFFFFFFFFF
    h1 = _mix(_mix(seed & _MASK, v & _MASK), v >> 32)
    h1 ^= 8  # the input's length in bytes
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _MASK
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _MASK
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def spark_partition(key: int, partitions: int) -> int:
    """The partition Spark's hash partitioning gives a ``bigint`` grouping key."""
    return spark_hash_long(key) % partitions  # Python's % is Spark's pmod for partitions > 0


def spread_keys(buckets: int, partitions: int) -> tuple[int, ...]:
    """Each bucket's key (index ``i`` -> key), the smallest non-negative integers such that
    bucket ``i`` lands in partition ``i mod partitions``; the indexes themselves for one
    partition."""
    if buckets < 1 or partitions < 1:
        raise ValueError(f"buckets ({buckets}) and partitions ({partitions}) must be positive")
    if partitions == 1:
        return tuple(range(buckets))
    keys: list[int | None] = [None] * buckets
    waiting = {p: list(range(p, buckets, partitions)) for p in range(partitions)}
    left, candidate = buckets, 0
    while left:
        queue = waiting.get(spark_partition(candidate, partitions))
        if queue:
            keys[queue.pop(0)] = candidate
            left -= 1
        candidate += 1
    return tuple(k for k in keys if k is not None)


def _literal_keys(keys: Sequence[int]) -> Column:
    return F.array(*(F.lit(k) for k in keys)).cast("array<bigint>")


def bucket_of(value: Column | str, keys: Sequence[int]) -> Column:
    """The bucket key of ``value`` (a card or merchant id): the key of bucket
    ``pmod(xxhash64(value), len(keys))``, a ``bigint``. One expression for every row that
    must meet in a bucket (a merchant's transactions and its keyed labels)."""
    index = F.pmod(F.xxhash64(value), F.lit(len(keys)))
    if tuple(keys) == tuple(range(len(keys))):
        # Index keys: the expression checkpoints from before spread keys were written with,
        # kept as it was (``element_at`` would also make the grouping key nullable: another
        # key schema for the state under an existing checkpoint).
        return index
    return F.element_at(_literal_keys(keys), (index + 1).cast("int"))


def every_bucket(keys: Sequence[int]) -> Column:
    """Every bucket's key, as an array (a row sent to all buckets is exploded over it)."""
    return _literal_keys(keys)
