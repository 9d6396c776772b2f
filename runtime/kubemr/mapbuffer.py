"""The map-side sort buffer: bounded memory, partitioned, sorted, combined, spilled.

Without a combiner, map output goes into a buffer of encoded records, one list per
partition. When the buffer's estimated memory reaches its capacity, every partition is
sorted by key and written to a spill file on local disk. With a combiner, map output goes
into a combining hash map instead (:mod:`kubemr.combinetable`), which merges each key's
values as they arrive and is encoded, partitioned and sorted only when it spills.
At the end the spills of each partition are merged (combining again) into one sorted
run per partition: the map task's output.

Memory is estimated from the encoded sizes plus Python's per-record overhead, so the
capacity bounds real memory, not just payload bytes. The final merge reads at most
``MERGE_FACTOR`` spills of a partition at once (more are first merged in passes), so a
task that spills many times stays within the same bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from kubemr import native, records, runs
from kubemr.combinetable import CombineTable
from kubemr.metrics import RuntimeMetrics
from kubemr.partitioning import Partitioner
from kubemr.runs import Record

RECORD_OVERHEAD = 170
"""Estimated Python memory per buffered record beyond its payload bytes: two bytes
objects (2 x 33), a tuple (56), a list slot (8) and allocator slack."""

ARENA_CHUNK = 1 << 20
"""Bytes of frames made from the arena at a time while a partition is written."""

PUBLISH_EVERY = 4096
"""Records between two updates of the buffer's occupancy metrics while it fills."""

MERGE_FACTOR = 16
"""Most spill files merged at once (each holds one decoded batch in memory while
merged); more are merged in passes first."""

Combiner = Callable[[Any, Iterator[Any]], Iterable[tuple[Any, Any]]]
_first = itemgetter(0)


def combine_sorted(
    sorted_records: Iterable[Record], combiner: Combiner, stats: dict[str, int]
) -> Iterator[Record]:
    """Run ``combiner`` over each key's group of a sorted record stream.

    A key with a single record passes through as it is: the contract lets the combiner
    run zero or more times per key, and this spares decoding and re-encoding map output
    that is already combined (a fast path's, or a key seen once)."""
    encode_value, decode_value = records.value_encoder(), records.value_decoder()
    for key_bytes, group in groupby(sorted_records, key=_first):
        encoded = [v for _, v in group]
        stats["combine_input_records"] += len(encoded)
        if len(encoded) == 1:
            stats["combine_output_records"] += 1
            yield key_bytes, encoded[0]
            continue
        key = records.decode_key(key_bytes)
        values = [decode_value(v) for v in encoded]
        for out_key, out_value in combiner(key, iter(values)):
            out_key_bytes = records.encode_key(out_key)
            if out_key_bytes != key_bytes:
                raise records.RecordError(
                    f"combine() must keep its key: got {out_key!r} for key {key!r}"
                )
            stats["combine_output_records"] += 1
            yield out_key_bytes, encode_value(out_value)


class MapBuffer:
    """Buffers one map task's output and turns it into one sorted run per partition."""

    def __init__(
        self,
        reduce_tasks: int,
        partitioner: Partitioner,
        capacity: int,
        spill_dir: Path,
        combiner: Combiner | None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self.reduce_tasks = reduce_tasks
        self.partitioner = partitioner
        self.capacity = capacity
        self.spill_dir = spill_dir
        self.combiner = combiner
        self.parts: list[list[Record]] = [[] for _ in range(reduce_tasks)]
        self.size = 0
        self.records = 0
        self.buffered = 0
        """Records in the buffer now (``records`` counts every record added)."""
        self.spills: list[list[Path]] = []
        self.stats: dict[str, int] = {
            "map_output_records": 0,
            "map_output_bytes": 0,
            "spills": 0,
            "spilled_records": 0,
            "combine_input_records": 0,
            "combine_output_records": 0,
        }
        self.timings: dict[str, float] = {"spill": 0.0, "merge": 0.0}
        self.peak_size = 0
        self.table = CombineTable(combiner, self.stats) if combiner is not None else None
        core = native.core
        self.arena: Any = core.SortBuffer(reduce_tasks) if core and combiner is None else None
        """Without a combiner, with the native core: the records, encoded in one arena
        (``kubemr._native.SortBuffer``) instead of ``parts``."""
        self.metrics = metrics
        if metrics is not None:
            metrics.set("kubemr_map_sort_buffer_capacity_bytes", capacity)
        spill_dir.mkdir(parents=True, exist_ok=True)

    def add(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Buffer map output pairs, spilling whenever the buffer is full."""
        if self.table is not None:
            self._add_combining(iter(pairs), self.table)
            return
        if self.arena is not None:
            self._add_native(iter(pairs), self.arena)
            return
        encode_key, encode_value = records.encode_key, records.encode_value
        partition, parts, capacity = self.partitioner, self.parts, self.capacity
        size, count, payload = self.size, 0, 0
        str_tag, none_value = records.STR_PREFIX, records.NONE_VALUE
        for key, value in pairs:
            key_bytes = (
                str_tag + key.encode("utf-8", "surrogatepass")
                if type(key) is str
                else encode_key(key)
            )
            value_bytes = none_value if value is None else encode_value(value)
            parts[partition(key_bytes)].append((key_bytes, value_bytes))
            record_size = len(key_bytes) + len(value_bytes)
            payload += record_size
            size += record_size + RECORD_OVERHEAD
            count += 1
            if size >= capacity:
                self.size = size
                self._account(count, payload)
                count = payload = 0
                self.spill(full=True)
                size = 0
            elif not count % PUBLISH_EVERY:
                self._publish(size, self.buffered + count)
        self.size = size
        self._account(count, payload)

    def _add_native(self, pairs: Iterator[tuple[Any, Any]], arena: Any) -> None:
        """:meth:`add`'s loop in the native core, ``PUBLISH_EVERY`` records at a time,
        into the arena. Each record counts its bytes plus its entry
        (``kubemr._native.ENTRY_BYTES``: partition, key prefix, offset, lengths) against
        the capacity; the arena grows by doubling, so it holds at most about twice that."""
        spec = self.partitioner.spec
        encode_key, encode_value = records.encode_key, records.encode_value
        more = True
        while more:
            size, count, payload, more = arena.fill(
                pairs,
                spec,
                self.size,
                self.capacity,
                PUBLISH_EVERY,
                encode_key,
                encode_value,
                records.NONE_VALUE,
            )
            self.size = size
            self._account(count, payload)
            if size >= self.capacity:
                self.spill(full=True)

    def _add_combining(self, pairs: Iterable[tuple[Any, Any]], table: CombineTable) -> None:
        seen = table.records

        def taken() -> None:  # account for the records the table took since last time
            nonlocal seen
            self.size = table.size
            self._account(table.records - seen, 0)
            seen = table.records

        def spill() -> None:
            taken()
            self.spill(full=True)

        def tick() -> None:
            self._publish(table.size, self.buffered + table.records - seen)

        table.add(pairs, self.capacity, spill, PUBLISH_EVERY, tick)
        taken()

    def _account(self, count: int, payload: int) -> None:
        self.records += count
        self.buffered += count
        self.stats["map_output_records"] += count
        self.stats["map_output_bytes"] += payload
        self.peak_size = max(self.peak_size, self.size)
        self._publish(self.size, self.buffered)

    def _publish(self, size: int, count: int) -> None:
        if self.metrics is not None:
            self.metrics.set("kubemr_map_sort_buffer_bytes", size)
            self.metrics.set("kubemr_map_sort_buffer_records", count)

    def _drain(self) -> None:
        """Move the combining table's contents into ``parts``, combined and sorted."""
        if self.table is not None:
            self.parts = self.table.drain(self.reduce_tasks, self.partitioner)
            self.stats["map_output_bytes"] += sum(
                len(k) + len(v) for part in self.parts for k, v in part
            )

    def _sorted_partition(self, index: int) -> Iterator[Record]:
        part = self.parts[index]
        if self.table is not None:
            return iter(part)  # drained: sorted and combined already
        runs.sort_records(part)
        if self.combiner is None:
            return iter(part)
        return combine_sorted(part, self.combiner, self.stats)

    def _write_partition(self, writer: runs.RunWriter, index: int) -> None:
        """Write partition ``index`` of the buffer, sorted (and combined), to ``writer``."""
        if self.arena is None:
            writer.write(self._sorted_partition(index))
            self.parts[index] = []
            return
        start, take = 0, runs.FIRST_GROUP
        while True:
            frames, start, take = self.arena.frames(
                index, start, take, runs.BATCH_BYTES, runs.MAX_GROUP, ARENA_CHUNK
            )
            if not frames:
                return
            writer.write_frames(frames)

    def spill(self, full: bool = False) -> None:
        """Sort, combine and write every partition to a new spill file; empty the buffer.
        ``full``: the buffer filled up and its producer waits for this spill."""
        started = time.perf_counter()
        self._drain()
        if self.arena is not None:
            self.arena.sort()
        number = len(self.spills)
        files: list[Path] = []
        for index in range(self.reduce_tasks):
            path = self.spill_dir / f"spill-{number:04d}-p{index:05d}.run"
            with runs.RunWriter(path) as writer:
                self._write_partition(writer, index)
            self.stats["spilled_records"] += writer.records
            files.append(path)
        if self.arena is not None:
            self.arena.clear()
        self.spills.append(files)
        self.stats["spills"] += 1
        self.size = self.buffered = 0
        elapsed = time.perf_counter() - started
        self.timings["spill"] += elapsed
        if self.metrics is not None:
            self._publish(0, 0)
            self.metrics.observe("kubemr_phase_duration_seconds", elapsed, "spill")
            if full:
                self.metrics.observe("kubemr_map_sort_buffer_full_wait_seconds", elapsed)

    def _merged(self, sources: list[runs.Source]) -> Iterator[Record]:
        """The sorted (and, with a combiner, combined) merge of some spill files."""
        merged: Iterator[Record] = runs.merge(sources)
        if self.combiner is not None and len(sources) > 1:
            merged = combine_sorted(merged, self.combiner, self.stats)
        return merged

    def finish(self, out_dir: Path) -> list[tuple[int, int]]:
        """Write one sorted run per partition to ``out_dir/part-NNNNN.run`` and their
        index (:func:`kubemr.runs.write_index`); return each partition's (records, bytes)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        result: list[tuple[int, int]] = []
        if self.spills and self.buffered:
            self.spill()
        elif not self.spills:
            self._drain()
            if self.arena is not None:
                self.arena.sort()
        for index in range(self.reduce_tasks):
            path = out_dir / runs.run_name(index)
            with runs.RunWriter(path) as writer:
                if not self.spills:
                    self._write_partition(writer, index)
                else:
                    spills: list[runs.Source] = [files[index] for files in self.spills]
                    paths, _ = runs.merge_in_passes(
                        spills, MERGE_FACTOR, self.spill_dir, f"p{index:05d}", self._merged
                    )
                    writer.write(self._merged(paths))
                    for merged_path in paths:
                        assert isinstance(merged_path, Path)
                        merged_path.unlink(missing_ok=True)
            result.append((writer.records, writer.bytes))
        runs.write_index(out_dir, result)
        for files in self.spills:
            for path in files:
                path.unlink(missing_ok=True)
        if self.arena is not None:
            self.arena.clear()
        self.buffered = self.size = 0
        self._publish(0, 0)
        self.timings["merge"] += time.perf_counter() - started
        return result
