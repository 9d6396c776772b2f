"""Benchmark: the CPU cost of kubemr's map path per record, against the user's functions
alone, in one process (CPU seconds: the figure machine load disturbs least).

Run it with::

    .venv/bin/python bench/mappath.py [--size-mb 16] [--repeat 5]

For each plain user app (``examples/apps/plain*.py``, as in bench/userapps.py), on the
first ``--size-mb`` MiB of the wordcount benchmark's corpus, interleaved:

- ``alone``: the user's ``map`` over every line of the split (read and decoded as kubemr
  reads it), its pairs gathered per key in a dict of lists, ``combine`` once per key if
  the app has one: the least any engine does with these functions.
- ``map task``: :func:`kubemr.maptask.run_map` on the same split, 2 partitions, the
  default 32 MiB buffer: map, combining map or sort buffer, spills, the final sorted runs
  on disk.
- ``reduce``: :func:`kubemr.reducetask.run_reduce` over one of those runs.

Prints the median CPU seconds (``time.process_time``) and the ratio map task / alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kubemr import inputs, maptask, partitioning, reducetask
from kubemr.splits import Split
from userapps import APPS
from wordcount import DEFAULT_CACHE, DEFAULT_DATA, MIB, build_corpus

ROOT = Path(__file__).resolve().parent.parent


def load(app: str) -> Any:
    reference, args = APPS[app]
    path, _, attr = reference.partition(":")
    spec = importlib.util.spec_from_file_location(f"bench_{app}", ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)(**args)


def alone(app: Any, split: Split) -> int:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for line in inputs.read_lines(split):
        for key, value in app.map(split.path, line):
            groups[key].append(value)
    combine = getattr(app, "combine", None)
    if combine is not None:
        return sum(1 for k, v in groups.items() for _ in combine(k, iter(v)))
    return len(groups)


def map_task(app: Any, split: Split, work: Path) -> None:
    maptask.run_map(
        app,
        split,
        reduce_tasks=2,
        partitioner=partitioning.hash_partitioner(2),
        combiner=getattr(app, "combine", None),
        buffer_size=32 * MIB,
        out_dir=work / "out",
        scratch_dir=work / "scratch",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    corpus, meta = build_corpus(args.data, int(args.size_mb * MIB), args.cache_dir)
    split = Split(str(corpus), 0, int(meta["bytes"]))
    print(f"split: {split} ({split.length / MIB:.1f} MiB), medians of {args.repeat}")
    print(
        f"{'app':<10} {'alone s':>8} {'map task s':>11} {'ratio':>6} {'reduce s':>9} "
        f"{'records':>10}"
    )
    for app_name in APPS:
        app = load(app_name)
        cpu: dict[str, list[float]] = defaultdict(list)
        records = 0
        for _ in range(args.repeat):
            work = Path(tempfile.mkdtemp(prefix="mappath-", dir=args.cache_dir))
            try:
                started = time.process_time()
                alone(app, split)
                cpu["alone"].append(time.process_time() - started)
                started = time.process_time()
                map_task(app, split, work)
                cpu["map"].append(time.process_time() - started)
                run = work / "out" / "part-00000.run"
                started = time.process_time()
                result = reducetask.run_reduce(app, [run], str(work / "part"), work / "r")
                cpu["reduce"].append(time.process_time() - started)
                records = result.counters["reduce_input_records"]
            finally:
                shutil.rmtree(work, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        print(
            f"{app_name:<10} {med['alone']:>8.2f} {med['map']:>11.2f} "
            f"{med['map'] / med['alone']:>6.2f} {med['reduce']:>9.2f} {records:>10}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
