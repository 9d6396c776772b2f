"""The sequential runner: the oracle every distributed result is compared with.

In one process, with no buffers, spills, shuffle or fast paths: every line of every
split goes through the app's ``map``, all pairs are sorted by key (stably, so values
keep input order), grouped, reduced, and written to the same part files the
distributed engine writes, through the same commit protocol.
"""

from __future__ import annotations

import io
import time
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from kubemr import apps, compression, inputs, records
from kubemr.plan import JobPlan
from kubemr.storage import OutputDir


def run_sequential(plan: JobPlan, search: list[Path] | None = None) -> dict[str, Any]:
    """Run the whole job in this process; return its summary."""
    started = time.time()
    spec = plan.job.spec
    app = apps.load_app(spec.app, search or [])
    output = OutputDir.of(spec)
    output.prepare(spec.output.overwrite)
    partition = plan.partitioner()
    parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(plan.reduce_tasks)]
    lines = 0
    for split in plan.splits:
        for line in inputs.read_lines(split, spec.storage):
            lines += 1
            for key, value in app.map(split.path, line):
                key_bytes = records.encode_key(key)
                parts[partition(key_bytes)].append((key_bytes, records.encode_value(value)))
    outputs = 0
    for index, part in enumerate(parts):
        part.sort(key=itemgetter(0))
        temp = output.temp_path("sequential", index)
        with io.TextIOWrapper(
            compression.compressing(output.store.open_write(temp), spec.output.compression),
            encoding="utf-8",
            errors="surrogateescape",
            newline="\n",
        ) as out:
            for key_bytes, group in groupby(part, key=itemgetter(0)):
                values = (records.decode_value(v) for _, v in group)
                for out_key, out_value in app.reduce(records.decode_key(key_bytes), values):
                    out.write(records.format_line(out_key, out_value) + "\n")
                    outputs += 1
        output.commit(temp, index)
    summary: dict[str, Any] = {
        "job": plan.job.metadata.name,
        "mode": "sequential",
        "app": spec.app.ref,
        "mapTasks": len(plan.splits),
        "reduceTasks": plan.reduce_tasks,
        "counters": {"map_input_records": lines, "reduce_output_records": outputs},
        "wallSeconds": round(time.time() - started, 3),
    }
    output.finish(summary)
    return summary
