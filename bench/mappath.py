"""Benchmark: the CPU cost of kubemr's map and reduce path per record, against the user's
functions alone, in one process, with the native core and without it (CPU seconds: the
figure machine load disturbs least).

Run it with::

    .venv/bin/python bench/mappath.py [--size-mb 16] [--repeat 5] [--apps wordcount,terasort]

For each plain user app (``examples/apps/plain*.py``, as in bench/userapps.py) on the
first ``--size-mb`` MiB of the wordcount benchmark's corpus, and for ``terasort`` (the
built-in ``sort`` app on ``--size-mb`` MiB of bench/terasort.py's TeraGen records, range
partitioned at the input's median key), interleaved:

- ``alone``: the user's ``map`` over every line of the split (read and decoded as kubemr
  reads it), its pairs gathered per key in a dict of lists, ``combine`` once per key if
  the app has one (for terasort: the keys then sorted): the least any engine does with
  these functions.
- ``map``: :func:`kubemr.maptask.run_map` on the same split, 2 partitions, the default
  32 MiB buffer: map, combining map or sort buffer, spills, the final sorted runs on
  disk; with the native core (``native``) and with the pure-Python path (``pure``,
  ``kubemr.native.core`` set to None in this process).
- ``reduce``: :func:`kubemr.reducetask.run_reduce` over both partitions' runs, likewise.

Prints the median CPU seconds (``time.process_time``) and the ratios map / alone.

With ``--instructions`` it counts instructions instead (valgrind's callgrind, which
``apt-get install valgrind`` provides): each of ``alone`` and ``map`` (native core) runs
once per app in a child process under callgrind, and a child that only loads (the
imports, the app, the split's corpus) is subtracted from both. Counts do not move with
the machine's load, so a change can be measured beside other work (a cold CI run, other
benchmarks); they are not times: cache misses and branch mispredictions are not counted,
and callgrind runs about 50 times slower. To compare two runtimes, run it twice with
``PYTHONPATH`` pointing at the other one (its children inherit it).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubemr import inputs, maptask, native, partitioning, records, reducetask
from kubemr.apps.sort import Sort
from kubemr.splits import Split
from terasort import teragen
from userapps import APPS
from wordcount import DEFAULT_CACHE, DEFAULT_DATA, MIB, build_corpus, write_json

ROOT = Path(__file__).resolve().parent.parent
TERASORT = "terasort"
PARTS = 2


def load(app: str) -> Any:
    if app == TERASORT:
        return Sort()
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
    if isinstance(app, Sort):
        return len(sorted(groups))
    combine = getattr(app, "combine", None)
    if combine is not None:
        return sum(1 for k, v in groups.items() for _ in combine(k, iter(v)))
    return len(groups)


def median_boundary(split: Split) -> partitioning.Partitioner:
    """The range partitioner at the split's median key (as the sampled one would cut)."""
    keys = [records.encode_key(line) for line in inputs.read_lines(split)]
    return partitioning.make_partitioner(PARTS, partitioning.boundaries_from_sample(keys, PARTS))


def map_task(app: Any, split: Split, work: Path, partitioner: partitioning.Partitioner) -> None:
    maptask.run_map(
        app,
        split,
        reduce_tasks=PARTS,
        partitioner=partitioner,
        combiner=getattr(app, "combine", None),
        buffer_size=32 * MIB,
        out_dir=work / "out",
        scratch_dir=work / "scratch",
    )


def reduce_task(app: Any, work: Path) -> int:
    runs = [work / "out" / f"part-{i:05d}.run" for i in range(PARTS)]
    result = reducetask.run_reduce(app, list(runs), str(work / "part"), work / "r")
    return result.counters["reduce_input_records"]


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = fn()
    return time.process_time() - started, result


CONTENDERS = ("load", "alone", "map")
"""What an ``--instructions`` child runs once: nothing past loading, the user's functions
alone, or the map task (native core)."""
COLLECTED = re.compile(r"Collected : (\d+)")


def split_of(app_name: str, size: int, text: Split, cache: Path) -> tuple[Split, Any]:
    """The split an app reads and the partitioner its map task uses."""
    if app_name != TERASORT:
        return text, partitioning.hash_partitioner(PARTS)
    data, _ = teragen(size, 16, cache)
    split = Split(str(data), 0, data.stat().st_size)
    return split, median_boundary(split)


def child(contender: str, app_name: str, size: int, text: Split, cache: Path) -> None:
    """Run ``contender`` once for ``app_name`` (under callgrind, in ``--instructions``)."""
    app = load(app_name)
    split, partitioner = split_of(app_name, size, text, cache)
    if contender == "alone":
        alone(app, split)
    elif contender == "map":
        work = Path(tempfile.mkdtemp(prefix="mappath-", dir=cache))
        try:
            map_task(app, split, work, partitioner)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def instructions(contender: str, app_name: str, args: argparse.Namespace) -> int:
    """Instructions a child running ``contender`` executed, counted by callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("mappath: --instructions needs valgrind (apt-get install valgrind)")
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", contender, "--apps", app_name]
    command += ["--size-mb", str(args.size_mb), "--data", str(args.data)]
    command += ["--cache-dir", str(args.cache_dir)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"mappath: {contender} {app_name} under callgrind failed:\n{done.stderr}")
    return int(found.group(1))


def count_instructions(args: argparse.Namespace, size: int) -> None:
    """``--instructions``: alone and map task, each less the loading child, per app."""
    print(
        f"{args.size_mb:g} MiB per app, instructions (callgrind, one run each, the "
        "loading child's subtracted); native core: "
        f"{'built' if native.core is not None else 'NOT BUILT (pure only)'}"
    )
    print(f"{'app':<10} {'load':>14} {'alone':>14} {'map':>14} {'map/alone':>10}")
    measured: dict[str, dict[str, int]] = {}
    for app_name in args.apps.split(","):
        split_of(app_name, size, Split("", 0, 0), args.cache_dir)  # teragen once, not timed
        counts = {c: instructions(c, app_name, args) for c in CONTENDERS}
        work = {c: counts[c] - counts["load"] for c in ("alone", "map")}
        measured[app_name] = counts
        print(
            f"{app_name:<10} {counts['load']:>14,} {work['alone']:>14,} {work['map']:>14,} "
            f"{work['map'] / work['alone']:>10.2f}",
            flush=True,
        )
    write_json(args.json, {"size_bytes": size, "instructions": measured})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--apps", default=",".join([*APPS, TERASORT]))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (callgrind), not time"
    )
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = int(args.size_mb * MIB)
    corpus, meta = build_corpus(args.data, size, args.cache_dir)
    text = Split(str(corpus), 0, int(meta["bytes"]))
    if args.child is not None:
        child(args.child, args.apps, size, text, args.cache_dir)
        return
    if args.instructions:
        count_instructions(args, size)
        return
    core = native.core
    print(
        f"{args.size_mb:g} MiB per app, medians of {args.repeat}, CPU seconds; "
        f"native core: {'built' if core is not None else 'NOT BUILT (pure only)'}"
    )
    print(
        f"{'app':<10} {'alone':>7} {'map nat':>8} {'map pure':>9} {'nat/alone':>10} "
        f"{'pure/alone':>11} {'red nat':>8} {'red pure':>9} {'records':>10}"
    )
    paths = {"native": core, "pure": None} if core is not None else {"pure": None}
    measured: dict[str, dict[str, list[float]]] = {}
    for app_name in args.apps.split(","):
        app = load(app_name)
        split, partitioner = split_of(app_name, size, text, args.cache_dir)
        seconds: dict[str, list[float]] = defaultdict(list)
        count = 0
        for _ in range(args.repeat):
            seconds["alone"].append(cpu(lambda: alone(app, split))[0])  # noqa: B023
            for path, use in paths.items():
                work = Path(tempfile.mkdtemp(prefix="mappath-", dir=args.cache_dir))
                native.core = use
                try:
                    seconds[f"map {path}"].append(
                        cpu(lambda: map_task(app, split, work, partitioner))[0]  # noqa: B023
                    )
                    took, count = cpu(lambda: reduce_task(app, work))  # noqa: B023
                    seconds[f"reduce {path}"].append(took)
                finally:
                    native.core = core
                    shutil.rmtree(work, ignore_errors=True)
        measured[app_name] = dict(seconds)
        med = {k: statistics.median(v) for k, v in seconds.items()}
        nat = med.get("map native", float("nan"))
        print(
            f"{app_name:<10} {med['alone']:>7.2f} {nat:>8.2f} {med['map pure']:>9.2f} "
            f"{nat / med['alone']:>10.2f} {med['map pure'] / med['alone']:>11.2f} "
            f"{med.get('reduce native', float('nan')):>8.2f} {med['reduce pure']:>9.2f} "
            f"{count:>10}",
            flush=True,
        )
    write_json(args.json, {"size_bytes": size, "cpu_seconds": measured})


if __name__ == "__main__":
    main()
