"""One map task attempt: read a split, call the app's map, and leave sorted runs on disk.

No networking here: the worker calls :func:`run_map` in a thread and reports the
result; the shuffle server later streams the runs it wrote.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from kubemr import inputs
from kubemr.apps import App
from kubemr.mapbuffer import Combiner, MapBuffer
from kubemr.metrics import RuntimeMetrics
from kubemr.partitioning import Partitioner
from kubemr.spec import StorageSpec
from kubemr.splits import Split


@dataclass
class MapResult:
    """What a finished map attempt reports."""

    partitions: list[tuple[int, int]]
    """(records, bytes) of each partition's run."""
    counters: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


PROGRESS_STEPS = 16
"""A split is read in about this many blocks, so its progress moves in steps this fine."""
MIN_BLOCK_BYTES = 4 * 2**10
"""Smallest block read (bytes), however small the split."""

Progress = Callable[[float], None]
"""Called with an attempt's progress, 0..1, as it moves."""


class MapCancelledError(Exception):
    """The attempt was cancelled (another attempt of the task finished first)."""


def block_bytes(split: Split) -> int:
    """Bytes read at a time from ``split``: about 1/``PROGRESS_STEPS`` of it, within
    ``MIN_BLOCK_BYTES`` and :data:`kubemr.inputs.BLOCK_BYTES`."""
    return min(inputs.BLOCK_BYTES, max(MIN_BLOCK_BYTES, split.length // PROGRESS_STEPS))


class _CountedBlocks:
    """Counts lines and bytes of the blocks an app reads; stops if cancelled; reports the
    share of the split's bytes the app has consumed (a block counts once the app asks
    for the next one)."""

    def __init__(
        self,
        blocks: Iterable[bytes],
        cancel: threading.Event | None,
        length: int,
        progress: Progress | None,
        metrics: RuntimeMetrics | None,
    ) -> None:
        self.blocks = blocks
        self.cancel = cancel
        self.length = max(length, 1)
        self.progress = progress
        self.metrics = metrics
        self.lines = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for block in self.blocks:
            if self.cancel is not None and self.cancel.is_set():
                raise MapCancelledError()
            lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            self.bytes += len(block)
            self.lines += lines
            if self.metrics is not None:
                self.metrics.stage("map", records_in=lines, bytes_in=len(block))
            yield block
            if self.progress is not None:
                self.progress(min(self.bytes / self.length, 1.0))


def _per_line(app: App, path: str, blocks: Iterable[bytes]) -> Iterator[tuple[Any, Any]]:
    """``app.map(path, line)`` over every line, chained at C speed (no Python frame of
    ours per record)."""
    lines = chain.from_iterable(map(inputs.lines_of_block, blocks))
    return chain.from_iterable(map(app.map, repeat(path), lines))


def run_map(
    app: App,
    split: Split,
    *,
    reduce_tasks: int,
    partitioner: Partitioner,
    combiner: Combiner | None,
    buffer_size: int,
    out_dir: Path,
    scratch_dir: Path,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    metrics: RuntimeMetrics | None = None,
    storage: StorageSpec | None = None,
) -> MapResult:
    """Map ``split`` into ``out_dir/part-NNNNN.run``, one sorted run per partition.

    If ``cancel`` is set while the split is read (checked before each block), raises
    :class:`MapCancelledError` and leaves nothing behind. ``progress`` is called with the
    share of the split's bytes consumed (bytes of the blocks the app has finished with /
    the split's length) after each block.
    """
    started = time.perf_counter()
    buffer = MapBuffer(reduce_tasks, partitioner, buffer_size, scratch_dir, combiner, metrics)
    blocks = _CountedBlocks(
        inputs.read_blocks(split, block_bytes(split), storage),
        cancel,
        split.length,
        progress,
        metrics,
    )
    try:
        map_split = getattr(app, "map_split", None)
        if callable(map_split):
            buffer.add(map_split(split.path, blocks, combiner is not None))
        else:
            buffer.add(_per_line(app, split.path, blocks))
        map_done = time.perf_counter()
        if cancel is not None and cancel.is_set():
            raise MapCancelledError()
        partitions = buffer.finish(out_dir)
    except MapCancelledError:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)
    counters = dict(buffer.stats)
    counters["map_input_records"] = blocks.lines
    counters["map_input_bytes"] = blocks.bytes
    counters["map_output_run_bytes"] = sum(b for _, b in partitions)
    timings = {
        "map": map_done - started - buffer.timings["spill"],
        "spill": buffer.timings["spill"],
        "map_merge": buffer.timings["merge"],
    }
    if metrics is not None:
        _record(metrics, counters, timings, partitions)
    return MapResult(partitions, counters, timings)


def _record(
    metrics: RuntimeMetrics,
    counters: dict[str, int],
    timings: dict[str, float],
    partitions: list[tuple[int, int]],
) -> None:
    """A finished map attempt's stage counts and phase durations (its spills and input
    were recorded as they happened)."""
    metrics.stage(
        "map",
        records_out=counters["map_output_records"],
        bytes_out=counters["map_output_bytes"],
    )
    metrics.stage(
        "combine",
        records_in=counters["combine_input_records"],
        records_out=counters["combine_output_records"],
    )
    metrics.stage("spill", records_out=counters["spilled_records"])
    metrics.stage(
        "map_merge",
        records_out=sum(r for r, _ in partitions),
        bytes_out=counters["map_output_run_bytes"],
    )
    metrics.observe("kubemr_phase_duration_seconds", timings["map"], "map")
    metrics.observe("kubemr_phase_duration_seconds", timings["map_merge"], "map_merge")
