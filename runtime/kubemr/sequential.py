"""The sequential runner: the oracle every distributed result is compared with.

In one process, with no buffers, spills, shuffle or fast paths: every record of every
split (in the job's format) goes through the app's ``map``, all pairs are sorted by key
(stably, so values keep input order), grouped, reduced, and written to the same part
files the distributed engine writes, through the same commit protocol.

It follows the same contract: the app's hooks run around each split (a map task) and
each partition (a reduce task); ``app.counters`` is fresh for each and the totals are
their sums; bad records are skipped up to ``maxSkippedRecords`` over the whole job (past
it the job fails, committing nothing); a map-only job writes one part per split, its
pairs in input order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from kubemr import apps, badrecords, compression, formats, inputs, partfiles, records, steps
from kubemr.outputdir import OutputDir
from kubemr.plan import JobPlan, plan_job


def _add(totals: dict[str, int], counters: apps.Counters) -> None:
    for name, value in counters.values.items():
        totals[name] = totals.get(name, 0) + value


def run_sequential(plan: JobPlan, search: list[Path] | None = None) -> dict[str, Any]:
    """Run the whole job in this process; return its summary. Raises
    :class:`kubemr.badrecords.TooManyBadRecordsError` (and whatever the app raises) if
    the job fails; then nothing is committed. A multi-step job runs its steps in order,
    each as a job of its own (:mod:`kubemr.steps`)."""
    if not plan.steps:
        return _run_step(plan, search)
    started = time.time()
    output = OutputDir.of(plan.job.spec)
    output.prepare(plan.job.spec.output.overwrite)
    summaries = []
    try:
        for job in plan.steps:
            summaries.append(_run_step(plan_job(job, search or [], check_output=False), search))
        steps.promote(OutputDir.of(plan.steps[-1].spec), output)
    except BaseException:
        output.abort()
        raise
    summary = steps.chain_summary(plan.job, summaries, started)
    output.finish(summary)
    return summary


def _run_step(plan: JobPlan, search: list[Path] | None = None) -> dict[str, Any]:
    started = time.time()
    spec = plan.job.spec
    app = apps.load_app(spec.app, search or [])
    output = OutputDir.of(spec)
    output.prepare(spec.output.overwrite)
    limit = spec.fault_tolerance.max_skipped_records
    bad = badrecords.BadRecords(limit) if limit > 0 else None
    app_counters: dict[str, int] = {}
    map_only = plan.reduce_tasks == 0
    partition = plan.partitioner()
    parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(plan.reduce_tasks)]
    written: list[tuple[str, int]] = []
    lines = outputs = 0
    try:
        for index, split in enumerate(plan.splits):
            counters = apps.start_task(app)
            apps.call_hook(app, "map_setup")
            pairs: list[tuple[Any, Any]] = []
            blocks = inputs.read_blocks_at(split, storage=spec.storage)
            arguments = formats.map_arguments(spec.input.format, split.path)
            for offset, raw in formats.raw_records(spec.input.format, split, blocks, spec.storage):
                lines += 1
                try:
                    emitted = list(app.map(*arguments(raw)))
                except Exception as exc:
                    if bad is None:
                        raise
                    bad.skip(f"{split.path}@{offset}", exc)
                    continue
                pairs.extend(emitted)
            pairs.extend(apps.call_hook(app, "map_teardown"))
            _add(app_counters, counters)
            if map_only:
                temp = output.temp_path(f"sequential-{index}", index)
                outputs += _write(output, temp, spec.output.compression, pairs, spec.output.format)
                written.append((temp, index))
                continue
            for key, value in pairs:
                key_bytes = records.encode_key(key)
                parts[partition(key_bytes)].append((key_bytes, records.encode_value(value)))
        for index, part in enumerate(parts):
            part.sort(key=itemgetter(0))
            counters = apps.start_task(app)
            apps.call_hook(app, "reduce_setup")
            reduced: list[tuple[Any, Any]] = []
            for key_bytes, group in groupby(part, key=itemgetter(0)):
                key = records.decode_key(key_bytes)
                values = (records.decode_value(v) for _, v in group)
                try:
                    reduced.extend(list(app.reduce(key, values)))  # all or nothing
                except Exception as exc:
                    if bad is None:
                        raise
                    bad.skip(f"key {key!r} (partition {index})", exc)
            reduced.extend(apps.call_hook(app, "reduce_teardown"))
            _add(app_counters, counters)
            temp = output.temp_path(f"sequential-{index}", index)
            outputs += _write(output, temp, spec.output.compression, reduced, spec.output.format)
            written.append((temp, index))
    except BaseException:
        output.abort()
        raise
    for temp, index in written:
        output.commit(temp, index)
    summary: dict[str, Any] = {
        "job": plan.job.metadata.name,
        "mode": "sequential",
        "app": spec.app.ref,
        "mapTasks": len(plan.splits),
        "reduceTasks": plan.reduce_tasks,
        "counters": {"map_input_records": lines, "reduce_output_records": outputs},
        "appCounters": dict(sorted(app_counters.items())),
        "skippedRecords": {
            "count": bad.count if bad else 0,
            "records": list(bad.locations) if bad else [],
        },
        "wallSeconds": round(time.time() - started, 3),
    }
    output.finish(summary)
    return summary


def _write(
    output: OutputDir,
    temp: str,
    codec: compression.OutputCodec,
    pairs: Iterable[tuple[Any, Any]],
    output_format: str,
) -> int:
    """Write pairs as output lines (or record frames) to ``temp``; return how many."""
    render = partfiles.renderer(output_format)
    stream = compression.compressing(output.store.open_write(temp), codec)
    with partfiles.PartWriter(stream, output_format) as out:
        rendered = []
        for key, value in pairs:
            records.encode_key(key)  # a key must be a key, as in the distributed engine
            rendered.append(render(key, value))
        if rendered:
            out.write(rendered)
    return len(rendered)
