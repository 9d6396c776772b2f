"""Each reduce partition's input size, kept in O(M + R) however many map outputs there are.

Pure, no I/O. A map output's per-partition sizes (R of them) stay with the mapper, in its
output's index (:func:`kubemr.runs.write_index`); a reducer learns its partition's size
when it fetches. The master keeps each map output's totals (on its
:class:`~kubemr.attempts.MapOutputRef`) and, here, one running sum per reduce partition:
a map task's sizes are added once, when its first output is accepted, and then forgotten.
A rerun of a lost output (the same split through the same code) is not added again: its
first output's sizes stand for it. So the sums are the sizes of the partitions the
reducers fetch (exactly so for a map whose output sizes do not change between runs) and
do not dip while a lost output runs again.

The sums are journaled as checkpoints (:meth:`PartitionSizes.checkpoint`), not per map
output: a checkpoint holds the R sums and the map tasks counted since the previous one,
and one is due once the journal grew by at least the last checkpoint's size since it
was written (and when the map phase ends), so checkpoints take at most about half the
journal (O(M + R) in all). A master that resumes restores the last checkpoint; map
outputs accepted after it are recovered without their sizes
(:attr:`PartitionSizes.counted` says how many are in).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Sequence
from typing import Any

CHECKPOINT = "partition_sizes"
"""The journal event of a checkpoint."""


@dataclasses.dataclass(frozen=True, slots=True)
class OutputSizes:
    """One map output's size per reduce partition, as two columns of R integers (as the
    mapper's report carries them: ``partition_records``, ``partition_bytes``), so that the
    master adds them up without a Python object per partition."""

    records: Sequence[int]
    """Records per reduce partition, indexed by partition."""
    bytes: Sequence[int]
    """Bytes per reduce partition (of sorted runs, as fetched), indexed by partition."""

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> OutputSizes:
        """The columns of (records, bytes) pairs, one per partition."""
        columns = tuple(zip(*pairs, strict=True))
        return cls(list(columns[0]), list(columns[1])) if columns else cls([], [])

    def totals(self) -> tuple[int, int]:
        """(records, bytes) over every partition."""
        return sum(self.records), sum(self.bytes)


class PartitionSizes:
    """Records and bytes per reduce partition over the map tasks counted so far."""

    def __init__(self, maps: int, reduces: int) -> None:
        self.records = [0] * reduces
        """Records per reduce partition."""
        self.bytes = [0] * reduces
        """Bytes per reduce partition (of sorted runs, as fetched)."""
        self._counted = bytearray(maps)
        self.counted = 0
        """Map tasks whose sizes are in the sums."""
        self._since: list[int] = []
        """Map tasks counted since the last checkpoint."""
        self._mark = 0
        """The journal's size (bytes) after the last checkpoint."""
        self._cost = 0
        """The last checkpoint's size (bytes)."""

    def add(self, map_index: int, output: OutputSizes) -> bool:
        """Count an accepted map output's sizes per partition, unless its map task is
        counted already or the output does not have R of each; whether it was counted."""
        reduces = len(self.bytes)
        if (
            self._counted[map_index]
            or len(output.records) != reduces
            or len(output.bytes) != reduces
        ):
            return False
        self.records = list(map(operator.add, self.records, output.records))  # loops in C
        self.bytes = list(map(operator.add, self.bytes, output.bytes))
        self._counted[map_index] = 1
        self.counted += 1
        self._since.append(map_index)
        return True

    def sizes(self) -> list[tuple[int, int]]:
        """(records, bytes) of every reduce partition."""
        return list(zip(self.records, self.bytes, strict=True))

    def checkpoint_due(self, journaled: int, *, map_phase_over: bool = False) -> bool:
        """Whether to journal a checkpoint now, the journal being ``journaled`` bytes: it
        grew by the last one's size since, or the map phase just ended (so that a master
        restarted in the reduce phase has every size)."""
        due = map_phase_over or journaled - self._mark >= self._cost
        return bool(self._since) and due

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint record of the sums now (the maps since the last are its own)."""
        record = {
            "event": CHECKPOINT,
            "maps": self._since,
            "records": self.records,
            "bytes": self.bytes,
        }
        self._since = []
        return record

    def checkpointed(self, before: int, after: int) -> None:
        """The checkpoint took the journal from ``before`` to ``after`` bytes."""
        self._mark, self._cost = after, after - before

    def restore(self, records: Sequence[int], sizes: Sequence[int], maps: Sequence[int]) -> None:
        """Take over the sums of a journaled checkpoint, which counted ``maps``."""
        if len(records) != len(self.records) or len(sizes) != len(self.bytes):
            raise ValueError(f"partition sizes of {len(sizes)} partitions, not {len(self.bytes)}")
        self.records, self.bytes = [int(r) for r in records], [int(b) for b in sizes]
        for index in maps:
            if not self._counted[index]:
                self._counted[index] = 1
                self.counted += 1
