"""Which reduce task a key goes to: stable hashing or sampled key ranges.

Pure. Both partitioners work on encoded keys (:mod:`kubemr.records`), never on Python's
``hash()``, which is salted per process: every mapper must agree on where a key goes.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Sequence

from kubemr import records

Partitioner = Callable[[bytes], int]
"""Maps an encoded key to a partition number in ``[0, R)``."""


def hash_partitioner(reduce_tasks: int) -> Partitioner:
    """``crc32(key) mod R``; a tuple key by its first element only, so that every key
    with one first element reaches one reduce task (secondary sort)."""
    if reduce_tasks == 1:
        return lambda key: 0
    crc32, tag, head = zlib.crc32, records.TUPLE_TAG, records.tuple_head
    return lambda key: crc32(key if key[0] != tag else head(key)) % reduce_tasks


def range_partitioner(boundaries: Sequence[bytes]) -> Partitioner:
    """Partition ``i`` holds keys in ``[boundaries[i-1], boundaries[i])``: part files read in
    order are globally sorted. A boundary cut from a tuple key is its first element
    (:func:`boundaries_from_sample`), a prefix of every key with that first element, so
    those keys all fall on one side of it."""
    points = list(boundaries)
    if any(a > b for a, b in itertools.pairwise(points)):
        raise ValueError("range partitioner boundaries must be sorted")
    return lambda key: bisect.bisect_right(points, key)


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
