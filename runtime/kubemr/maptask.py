"""One map task attempt: read a split, call the app's map, and leave sorted runs on disk.

No networking here: the worker calls :func:`run_map` in a thread and reports the
result; the shuffle server later streams the runs it wrote. In a map-only job (no reduce
tasks) the attempt instead writes its pairs, in input order, as output lines to a
temporary part file that the master commits.

Records reach ``map`` through the job's format (:mod:`kubemr.formats`), between the app's
``map_setup`` and ``map_teardown`` hooks; when the job allows skipping bad records, each
record's pairs are kept only if its ``map`` call returns without raising
(:mod:`kubemr.badrecords`).
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from kubemr import apps, compression, formats, inputs, partfiles, records, stores
from kubemr.apps import App
from kubemr.badrecords import BadRecords
from kubemr.mapbuffer import Combiner, MapBuffer
from kubemr.metrics import RuntimeMetrics
from kubemr.partitioning import Partitioner
from kubemr.spec import StorageSpec
from kubemr.splits import Split


@dataclass
class MapResult:
    """What a finished map attempt reports."""

    partitions: list[tuple[int, int]]
    """(records, bytes) of each partition's run (none in a map-only job)."""
    counters: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    app_counters: dict[str, int] = field(default_factory=dict)
    """The app's own counters (:class:`kubemr.apps.Counters`)."""
    skipped: list[str] = field(default_factory=list)
    """Locations of the bad records skipped (the first :data:`kubemr.badrecords.LISTED`)."""


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


class _CountedBlocks:  # yields (offset, block)
    """Counts lines and bytes of the blocks an app reads; stops if cancelled; reports the
    share of the split's bytes the app has consumed (a block counts once the app asks
    for the next one)."""

    def __init__(
        self,
        blocks: Iterable[tuple[int, bytes]],
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

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for offset, block in self.blocks:
            if self.cancel is not None and self.cancel.is_set():
                raise MapCancelledError()
            lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            self.bytes += len(block)
            self.lines += lines
            if self.metrics is not None:
                self.metrics.stage("map", records_in=lines, bytes_in=len(block))
            yield offset, block
            if self.progress is not None:
                self.progress(min(self.bytes / self.length, 1.0))


def _per_line(
    app: App, path: str, blocks: Iterable[tuple[int, bytes]]
) -> Iterator[tuple[Any, Any]]:
    """``app.map(path, line)`` over every line, chained at C speed (no Python frame of
    ours per record)."""
    lines = chain.from_iterable(map(inputs.lines_of_block, map(itemgetter(1), blocks)))
    return chain.from_iterable(map(app.map, repeat(path), lines))


def _per_record(
    app: App,
    split: Split,
    blocks: _CountedBlocks,
    record_format: str,
    bad: BadRecords | None,
    storage: StorageSpec | None,
) -> Iterator[tuple[Any, Any]]:
    """Each record through the format's parser and ``map``; a record whose parsing or
    map raises is skipped when ``bad`` allows it (its pairs dropped), else fails the task."""
    app_map, path = app.map, split.path
    arguments = formats.map_arguments(record_format, path)
    counting = record_format == "records"  # no blocks to count lines of
    for offset, raw in formats.raw_records(record_format, split, blocks, storage):
        if counting:
            blocks.lines += 1
        if bad is None:
            yield from app_map(*arguments(raw))
            continue
        try:
            pairs = list(app_map(*arguments(raw)))
        except Exception as exc:
            bad.skip(f"{path}@{offset}", exc)
            continue
        yield from pairs


def _app_pairs(
    app: App,
    split: Split,
    blocks: _CountedBlocks,
    record_format: str,
    bad: BadRecords | None,
    combine: bool,
    storage: StorageSpec | None,
    in_order: bool = False,
) -> tuple[Iterable[tuple[Any, Any]], Iterable[tuple[Any, Any]]]:
    """What the app emits for ``split``, in two parts consumed in order: the records'
    pairs (the app's fast path's, undecorated, when it has one and ``in_order`` is not
    asked: a fast path's pairs need not come in input order), then the pairs of
    ``map_teardown`` (called when that part is iterated). Runs ``map_setup`` now."""
    apps.call_hook(app, "map_setup")
    map_split = None if in_order else getattr(app, "map_split", None)
    main: Iterable[tuple[Any, Any]]
    if record_format == "text" and bad is None and callable(map_split):
        main = map_split(split.path, (block for _, block in blocks), combine)
    elif record_format == "text" and bad is None:
        main = _per_line(app, split.path, blocks)
    else:
        main = _per_record(app, split, blocks, record_format, bad, storage)
    return main, _teardown(app)


def _teardown(app: App) -> Iterator[tuple[Any, Any]]:
    yield from apps.call_hook(app, "map_teardown")


def _write_lines(
    pairs: Iterable[tuple[Any, Any]],
    out_path: str,
    storage: StorageSpec | None,
    codec: compression.OutputCodec,
    output_format: str,
) -> tuple[int, int]:
    """Write pairs in order (a map-only task) as output lines, or record frames; return
    (pairs, bytes)."""
    store = stores.store_for(out_path, storage)
    render, count = partfiles.renderer(output_format), 0
    with partfiles.PartWriter(
        compression.compressing(store.open_write(out_path), codec), output_format
    ) as out:
        batch: list[Any] = []
        for key, value in pairs:
            if not out.records:
                records.encode_key(key)  # keys must be keys, as when they are shuffled
            batch.append(render(key, value))
            if len(batch) >= 4096:
                out.write(batch)
                count, batch = count + len(batch), []
        if batch:
            out.write(batch)
            count += len(batch)
    return count, out.bytes


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
    record_format: str = "text",
    max_skipped: int = 0,
    output_path: str | None = None,
    codec: compression.OutputCodec = "none",
    output_format: str = "text",
) -> MapResult:
    """Map ``split`` into ``out_dir/part-NNNNN.run``, one sorted run per partition; or,
    with ``output_path`` (a map-only job), into that file as output lines in input order,
    compressed with ``codec`` (record frames if ``output_format`` is ``records``).

    If ``cancel`` is set while the split is read (checked before each block), raises
    :class:`MapCancelledError` and leaves nothing behind. ``progress`` is called with the
    share of the split's bytes consumed (bytes of the blocks the app has finished with /
    the split's length) after each block. ``record_format`` is ``spec.input.format``;
    ``max_skipped`` > 0 skips up to that many bad records (then raises
    :class:`kubemr.badrecords.TooManyBadRecordsError`).
    """
    started = time.perf_counter()
    counted = apps.start_task(app)
    bad = BadRecords(max_skipped) if max_skipped > 0 else None
    blocks = _CountedBlocks(
        iter(())
        if record_format in formats.WHOLE_FORMATS
        else inputs.read_blocks_at(split, block_bytes(split), storage),
        cancel,
        split.length,
        progress,
        metrics,
    )
    pairs, teardown = _app_pairs(
        app,
        split,
        blocks,
        record_format,
        bad,
        combiner is not None,
        storage,
        output_path is not None,
    )
    if output_path is not None:
        lines, size = _write_lines(
            itertools.chain(pairs, teardown), output_path, storage, codec, output_format
        )
        counters = {"map_output_records": lines, "output_bytes": size}
        return _result(split, blocks, record_format, counters, {}, [], counted, bad, started)
    buffer = MapBuffer(reduce_tasks, partitioner, buffer_size, scratch_dir, combiner, metrics)
    try:
        buffer.add(pairs)
        buffer.add(teardown)
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
    counters["map_output_run_bytes"] = sum(b for _, b in partitions)
    timings = {
        "map": map_done - started - buffer.timings["spill"],
        "spill": buffer.timings["spill"],
        "map_merge": buffer.timings["merge"],
    }
    result = _result(
        split, blocks, record_format, counters, timings, partitions, counted, bad, started
    )
    if metrics is not None:
        _record(metrics, result.counters, timings, partitions)
    return result


def _result(
    split: Split,
    blocks: _CountedBlocks,
    record_format: str,
    counters: dict[str, int],
    timings: dict[str, float],
    partitions: list[tuple[int, int]],
    counted: apps.Counters,
    bad: BadRecords | None,
    started: float,
) -> MapResult:
    whole = record_format in formats.WHOLE_FORMATS
    counters["map_input_records"] = 1 if record_format == "whole-file" else blocks.lines
    counters["map_input_bytes"] = split.length if whole else blocks.bytes
    if bad is not None:
        counters["skipped_records"] = bad.count
    timings.setdefault("map", time.perf_counter() - started)
    return MapResult(
        partitions,
        counters,
        timings,
        dict(counted.values),
        list(bad.locations) if bad is not None else [],
    )


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
