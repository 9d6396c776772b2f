"""One reduce task attempt: merge sorted runs, call the app's reduce, write a part file.

Runs come from the shuffle (in memory, or on local disk when they did not fit the
fetch buffer). When there are more on-disk runs than ``MERGE_FACTOR`` they are first
merged into larger runs, so open files and decode buffers stay bounded. The output is
written to the attempt's temporary path (a local file, or on S3 a multipart upload that
becomes an object only once the whole part is written); the master commits it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, groupby, starmap
from operator import itemgetter
from pathlib import Path
from typing import Any

from kubemr import apps, compression, native, partfiles, records, runs, stores
from kubemr.apps import App
from kubemr.badrecords import BadRecords
from kubemr.metrics import RuntimeMetrics
from kubemr.runs import Record
from kubemr.spec import StorageSpec

MERGE_FACTOR = 32
"""Most runs merged at once; more on-disk runs are merged in passes first."""
PROGRESS_GROUPS = 1024
"""Keys reduced between two progress reports."""
_first = itemgetter(0)


class ReduceCancelledError(Exception):
    """The attempt was cancelled (its worker is stopping, or another attempt won); what
    it wrote so far is an unfinished temporary file that the caller removes."""


@dataclass
class ReduceResult:
    """What a finished reduce attempt reports."""

    counters: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    app_counters: dict[str, int] = field(default_factory=dict)
    """The app's own counters (:class:`kubemr.apps.Counters`)."""
    skipped: list[str] = field(default_factory=list)
    """Keys whose reduce raised and was skipped (the first ``badrecords.LISTED``)."""


def _merge(sources: list[runs.Source]) -> Iterator[Record]:
    return runs.merge(sources)


def run_reduce(
    app: App,
    sources: list[runs.Source],
    out_path: str,
    scratch: Path,
    metrics: RuntimeMetrics | None = None,
    progress: Callable[[int], None] | None = None,
    storage: StorageSpec | None = None,
    codec: compression.OutputCodec = "none",
    max_skipped: int = 0,
    partition: int = 0,
    cancel: threading.Event | None = None,
    output_format: str = "text",
) -> ReduceResult:
    """Merge the runs, reduce, and write ``out_path``. Runs must come in map-task order,
    so that each key's values reach reduce in input order. ``progress`` is called with
    the number of input records reduced so far, every ``PROGRESS_GROUPS`` keys. The part
    file is compressed with ``codec`` (``spec.output.compression``). ``max_skipped`` > 0
    skips up to that many keys whose reduce raises (their output dropped), naming them
    with ``partition``. The app's ``reduce_setup`` runs first and the pairs of its
    ``reduce_teardown`` are written last. If ``cancel`` is set (checked before each
    key; in the native core's loop, before each ``PROGRESS_GROUPS`` keys), raises
    :class:`ReduceCancelledError`."""
    stats = {
        "merge_passes": 0,
        "reduce_input_records": 0,
        "reduce_input_groups": 0,
        "reduce_output_records": 0,
        "output_bytes": 0,
    }
    started = time.perf_counter()
    scratch.mkdir(parents=True, exist_ok=True)
    sources, stats["merge_passes"] = runs.merge_in_passes(
        list(sources), MERGE_FACTOR, scratch, "reduce", _merge
    )
    merge_done = time.perf_counter()
    decode_key, decode_value, format_line = (
        records.decode_key,
        records.value_decoder(),
        partfiles.renderer(output_format),
    )
    reduce = app.reduce
    counted = apps.start_task(app)
    bad = BadRecords(max_skipped) if max_skipped > 0 else None
    second = itemgetter(1)
    STR_TAG = records.STR_TAG  # noqa: N806 (a constant, local for the loop)

    def count_batches(batches: Iterable[list[Record]]) -> Iterator[list[Record]]:
        for batch in batches:  # counted a batch at a time: no Python step per record
            stats["reduce_input_records"] += len(batch)
            yield batch

    merged = chain.from_iterable(count_batches(runs.merge_batches(sources)))

    store = stores.store_for(out_path, storage)
    stream = compression.compressing(store.open_write(out_path), codec)
    with partfiles.PartWriter(stream, output_format) as out:

        def write(lines: list[Any]) -> None:
            stats["reduce_output_records"] += len(lines)
            out.write(lines)

        def cancelled() -> None:
            if cancel is not None and cancel.is_set():
                raise ReduceCancelledError(f"partition {partition}")

        def reduce_python() -> tuple[list[Any], int]:
            """The reference loop: a key at a time."""
            lines: list[Any] = []
            groups = 0
            for key_bytes, group in groupby(merged, key=_first):
                groups += 1
                cancelled()
                if progress is not None and not groups % PROGRESS_GROUPS:
                    progress(stats["reduce_input_records"])
                key = (
                    key_bytes[1:].decode("utf-8", "surrogatepass")
                    if key_bytes[0] == STR_TAG
                    else decode_key(key_bytes)
                )
                values = map(decode_value, map(second, group))
                if bad is None:
                    lines += starmap(format_line, reduce(key, values))
                else:
                    mark = len(lines)
                    try:
                        lines += starmap(format_line, reduce(key, values))
                    except Exception as exc:
                        del lines[mark:]
                        bad.skip(f"key {key!r} (partition {partition})", exc)
                if len(lines) >= 4096:
                    write(lines)
                    lines = []
            return lines, groups

        def reduce_native(core: Any) -> tuple[list[Any], int]:
            """The same loop in the native core (:class:`kubemr._native.Grouper`), up to
            ``PROGRESS_GROUPS`` keys or 4096 lines at a time (cancel is checked and
            progress reported between those)."""
            grouper = core.Grouper(merged, decode_key, records.decode_value)
            text = format_line is records.format_line  # its common cases are made natively
            lines: list[Any] = []
            groups = 0
            while True:
                cancelled()
                room = PROGRESS_GROUPS - groups % PROGRESS_GROUPS
                done: int = grouper.run(reduce, format_line, text, lines, room, 4096)
                if not done:
                    return lines, groups
                groups += done
                if progress is not None and not groups % PROGRESS_GROUPS:
                    progress(stats["reduce_input_records"])
                if len(lines) >= 4096:
                    write(lines)
                    lines = []

        apps.call_hook(app, "reduce_setup")
        core = native.core
        lines, groups = reduce_python() if core is None or bad is not None else reduce_native(core)
        lines.extend(starmap(format_line, apps.call_hook(app, "reduce_teardown")))
        stats["reduce_input_groups"] = groups
        if lines:
            write(lines)
    stats["output_bytes"] = out.bytes
    for source in sources:
        if isinstance(source, Path):
            source.unlink(missing_ok=True)
    done = time.perf_counter()
    timings = {"reduce_merge": merge_done - started, "reduce": done - merge_done}
    if metrics is not None:
        metrics.stage(
            "reduce",
            records_in=stats["reduce_input_records"],
            records_out=stats["reduce_output_records"],
            bytes_out=stats["output_bytes"],
        )
        for phase, seconds in timings.items():
            metrics.observe("kubemr_phase_duration_seconds", seconds, phase)
    if bad is not None:
        stats["skipped_records"] = bad.count
    skipped = list(bad.locations) if bad is not None else []
    return ReduceResult(stats, timings, dict(counted.values), skipped)
