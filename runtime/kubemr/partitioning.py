"""Which reduce task a key goes to: stable hashing or sampled key ranges.

Pure (the native core, :mod:`kubemr.native`, partitions batches of keys the same way).
Both partitioners work on encoded keys (:mod:`kubemr.records`), never on Python's
``hash()``, which is salted per process: every mapper must agree on where a key goes.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Sequence

from kubemr import native, records

PartitionSpec = int | list[bytes]
"""What the native core needs to partition like a :class:`Partitioner`: the hash
partitioner's R, or the range partitioner's boundaries."""


class Partitioner:
    """Maps an encoded key to a partition number in ``[0, R)``."""

    spec: PartitionSpec

    def __call__(self, key: bytes) -> int:
        raise NotImplementedError

    def many(self, keys: list[bytes]) -> list[int]:
        """The partitions of many keys (natively when the native core is in use)."""
        if native.core is not None:
            return native.core.partitions(keys, self.spec)  # type: ignore[no-any-return]
        return [self(k) for k in keys]


class HashPartitioner(Partitioner):
    """``crc32(key) mod R``; a tuple key by its first element only, so that every key
    with one first element reaches one reduce task (secondary sort)."""

    def __init__(self, reduce_tasks: int) -> None:
        self.reduce_tasks = reduce_tasks  # 0 in a map-only job, which never partitions
        self.spec = reduce_tasks

    def __call__(self, key: bytes) -> int:
        if self.reduce_tasks == 1:
            return 0
        return zlib.crc32(key if key[0] != _TUPLE_TAG else records.tuple_head(key)) % (
            self.reduce_tasks
        )


class RangePartitioner(Partitioner):
    """Partition ``i`` holds keys in ``[boundaries[i-1], boundaries[i])``: part files read
    in order are globally sorted. A boundary cut from a tuple key is its first element
    (:func:`boundaries_from_sample`), a prefix of every key with that first element, so
    those keys all fall on one side of it."""

    def __init__(self, boundaries: Sequence[bytes]) -> None:
        points = [bytes(b) for b in boundaries]
        if any(a > b for a, b in itertools.pairwise(points)):
            raise ValueError("range partitioner boundaries must be sorted")
        self.points = points
        self.spec = points

    def __call__(self, key: bytes) -> int:
        return bisect.bisect_right(self.points, key)


_TUPLE_TAG = records.TUPLE_TAG


def hash_partitioner(reduce_tasks: int) -> Partitioner:
    """The stable hash partitioner over ``reduce_tasks`` partitions."""
    return HashPartitioner(reduce_tasks)


def range_partitioner(boundaries: Sequence[bytes]) -> Partitioner:
    """The range partitioner with sorted ``boundaries`` (``R - 1`` of them)."""
    return RangePartitioner(boundaries)


def boundaries_from_sample(sample: Sequence[bytes], reduce_tasks: int) -> list[bytes]:
    """Pick ``R - 1`` split points at the quantiles of a sample of encoded keys."""
    if reduce_tasks <= 1 or not sample:
        return []
    ordered = sorted(records.tuple_head(k) for k in sample)  # a tuple by its first element
    return [ordered[(i * len(ordered)) // reduce_tasks] for i in range(1, reduce_tasks)]


def make_partitioner(reduce_tasks: int, boundaries: Sequence[bytes]) -> Partitioner:
    """The partitioner a job uses: range when it has boundaries, hash otherwise."""
    if boundaries:
        return range_partitioner(boundaries)
    return hash_partitioner(reduce_tasks)
