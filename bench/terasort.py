"""Benchmark: a TeraSort-style sort, kubemr against GNU sort (and PySpark sortByKey).

Run it with ``make bench-terasort`` or::

    .venv/bin/python bench/terasort.py [--size-mb 1024] [--repeat 3]

1. **TeraGen**: ``--size-mb`` MiB of 100-byte records, generated deterministically
   (``random.Random(--seed)``) and cached under ``.cache/bench/``: a 10-byte key of
   printable ASCII (``!`` to ``~``), the row number as 32 hex digits, 57 filler letters
   (the row number mod 26, as ``A``..``Z``) and ``\\n``. Records are text lines, kubemr's
   input format.
2. **Contenders**, interleaved in a rotating order, each a child process of this script:

   - ``kubemr``: ``kubemr run`` of the built-in ``sort`` app (each line a key, compared by
     byte; the sampled range partitioner, so part files read in order are one sorted
     sequence): 2 mappers, 2 reducers, ``reduceTasks: 2``, every other setting default.
   - ``kubemr-pure`` (``--pure``): the same with the native core off (``KUBEMR_NATIVE=0``).
   - ``gnu-sort``: ``LC_ALL=C sort --parallel=2`` of the file into one output file
     (its default memory buffer).
   - ``pyspark-sortbykey`` (when ``--peers-python`` exists; ``make bench-peers``):
     ``textFile`` → ``(line[:10], line)`` → ``sortByKey(numPartitions=2)`` → values →
     ``saveAsTextFile``, ``local[2]``.
3. **TeraValidate**, on every run's output: every file is sorted by key, the last key of
   a file is at most the first of the next, the record count equals the input's, and the
   checksum (the sum of crc32 of every record, modulo 2**64, so order-independent) equals
   the input's.

Prints medians, the ratios kubemr / baseline and the issue's target check (kubemr at most
2x GNU sort). ``--json FILE`` writes every measurement.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wordcount import (
    MB,
    MIB,
    Measurement,
    add_common_args,
    fail,
    fmt_mib,
    kubemr_command,
    load_line,
    timed_child,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
RECORD = 100
KEY = 10
ROWS_PER_CHUNK = 100_000
TARGET_RATIO = 2.0
_PRINTABLE = bytes(0x21 + b % 94 for b in range(256))
_FILLERS = [bytes([0x41 + i]) * (RECORD - KEY - 32 - 1) for i in range(26)]


# --- TeraGen and TeraValidate --------------------------------------------------------------


def teragen(size: int, seed: int, cache: Path) -> tuple[Path, dict[str, Any]]:
    """The cached input of ``size // 100`` records; its record count and checksum."""
    rows = size // RECORD
    path = cache / f"teragen-{rows}-{seed}.txt"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if path.stat().st_size == rows * RECORD:
            return path, meta
    cache.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    checksum = 0
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".teragen-")
    with os.fdopen(fd, "wb") as out:
        for first in range(0, rows, ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, rows - first)
            keys = rng.randbytes(KEY * count).translate(_PRINTABLE)
            chunk = [
                b"%s%032X%s\n" % (keys[i * KEY : (i + 1) * KEY], row, _FILLERS[row % 26])
                for i, row in enumerate(range(first, first + count))
            ]
            checksum += sum(map(zlib.crc32, chunk))
            out.write(b"".join(chunk))
    os.replace(tmp, path)
    meta = {"rows": rows, "checksum": checksum % 2**64, "seed": seed}
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return path, meta


@dataclass
class Validation:
    rows: int = 0
    checksum: int = 0
    files: int = 0


def teravalidate(parts: list[Path], meta: dict[str, Any]) -> Validation:
    """Check order within and across ``parts`` (in order), the count and the checksum;
    raise SystemExit naming the first problem."""
    seen = Validation()
    previous = b""
    for part in parts:
        seen.files += 1
        with part.open("rb") as stream:
            for line in stream:
                key = line[:KEY]
                if key < previous:
                    raise SystemExit(
                        f"teravalidate: {part} record {seen.rows}: key {key!r} < {previous!r}"
                    )
                previous = key
                seen.rows += 1
                seen.checksum += zlib.crc32(line)
    seen.checksum %= 2**64
    if seen.rows != meta["rows"]:
        raise SystemExit(f"teravalidate: {seen.rows} records, input had {meta['rows']}")
    if seen.checksum != meta["checksum"]:
        raise SystemExit(f"teravalidate: checksum {seen.checksum} != input's {meta['checksum']}")
    return seen


# --- contenders --------------------------------------------------------------------------


def write_manifest(data: Path, work: Path) -> Path:
    manifest = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "bench-terasort"},
        "spec": {
            "app": {"builtin": "sort"},
            "input": {"paths": [str(data)]},
            "output": {"path": str(work / "kubemr-out"), "overwrite": True},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 2},
        },
    }
    path = work / "terasort.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def _measure(
    name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Measurement:
    load = os.getloadavg()[0]
    wall, code, peak, cpu = timed_child(argv, log, env)
    if code != 0:
        fail(name, code, log)
    return Measurement(name, wall, peak, cpu, {}, (load, os.getloadavg()[0]))


SPARK_SORT = """
import sys
from pyspark import SparkConf, SparkContext
conf = SparkConf().setMaster("local[2]").setAppName("terasort")
conf = conf.set("spark.ui.enabled", "false").set("spark.driver.memory", "2g")
sc = SparkContext(conf=conf)
sc.setLogLevel("ERROR")
(sc.textFile(sys.argv[1]).map(lambda line: (line[:10], line))
   .sortByKey(numPartitions=2).values().saveAsTextFile(sys.argv[2]))
sc.stop()
"""


def run_contender(
    name: str, data: Path, manifest: Path, work: Path, args: argparse.Namespace
) -> tuple[Measurement, list[Path]]:
    log = work / f"{name}.log"
    if name.startswith("kubemr"):
        env = {"KUBEMR_NATIVE": "0"} if name == "kubemr-pure" else None
        measured = _measure(name, [*kubemr_command(), "run", str(manifest), "--quiet"], log, env)
        out = work / "kubemr-out"
        summary = json.loads((out / "_summary.json").read_text(encoding="utf-8"))
        measured.process_rss = {str(k): int(v) for k, v in summary["peakRssBytes"].items()}
        measured.extra = {"map_tasks": summary.get("mapTasks")}
        return measured, sorted(out.glob("part-*"))
    if name == "gnu-sort":
        out_file = work / "gnu-sort.out"
        argv = ["env", "LC_ALL=C", "sort", "--parallel=2", "-o", str(out_file), str(data)]
        return _measure(name, argv, log), [out_file]
    out_dir = work / "spark-out"
    shutil.rmtree(out_dir, ignore_errors=True)
    script = work / "spark_sort.py"
    script.write_text(SPARK_SORT, encoding="utf-8")
    argv = [str(args.peers_python), str(script), str(data), str(out_dir)]
    return _measure(name, argv, log), sorted(out_dir.glob("part-*"))


def report(results: dict[str, list[Measurement]], size: int, args: argparse.Namespace) -> str:
    wall = {n: statistics.median(m.wall for m in r) for n, r in results.items()}
    lines = [
        f"terasort, {size / MIB:.1f} MiB ({size // RECORD} records of {RECORD} bytes), "
        f"medians of {args.repeat} run(s); MB = 10^6 bytes",
        "",
        f"{'contender':<18} {'wall s':>8} {'MB/s':>7} {'CPU s':>8} {'peak RSS':>10}",
    ]
    for name, runs in results.items():
        cpu = statistics.median(m.cpu for m in runs)
        peak = statistics.median(m.tree_peak_rss for m in runs)
        lines.append(
            f"{name:<18} {wall[name]:>8.2f} {size / MB / wall[name]:>7.1f} {cpu:>8.2f} "
            f"{fmt_mib(peak):>10}"
        )
    lines.append("")
    cpus = {n: statistics.median(m.cpu for m in r) for n, r in results.items()}
    for name in results:
        if name != "kubemr":
            ratio = wall["kubemr"] / wall[name]
            lines.append(f"kubemr / {name} CPU = {cpus['kubemr'] / cpus[name]:.2f}")
            verdict = ""
            if name == "gnu-sort":
                verdict = (
                    f"   (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'})"
                )
            lines.append(f"kubemr / {name} = {ratio:.2f}{verdict}")
    kube = results["kubemr"]
    per = collections.defaultdict(list)
    for m in kube:
        for k, v in m.process_rss.items():
            per[k].append(v)
    lines.append(
        f"kubemr: {kube[0].extra['map_tasks']} map tasks; peak RSS per process (median): "
        + ", ".join(f"{k} {fmt_mib(statistics.median(v))}" for k, v in sorted(per.items()))
    )
    if args.skipped:
        lines.append(f"skipped: {args.skipped}")
    lines.append(load_line(m for r in results.values() for m in r))
    lines.append(
        "teravalidate: order within and across files, record count and checksum (checked every run)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=1024, help="input size, MiB")
    parser.add_argument("--seed", type=int, default=16)
    add_common_args(parser, "PySpark")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mb <= 0:
        parser.error("--repeat must be >= 1 and --size-mb > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data, meta = teragen(int(args.size_mb * MIB), args.seed, args.cache_dir)
    size = data.stat().st_size
    print(f"input: {data} ({meta['rows']} records, {size} bytes)", flush=True)
    names = ["kubemr", *(["kubemr-pure"] if args.pure else []), "gnu-sort"]
    args.skipped = ""
    if shutil.which("sort") is None:
        raise SystemExit("bench: GNU sort is not on PATH")
    if args.no_peers:
        args.skipped = "pyspark-sortbykey (--no-peers)"
    elif not args.peers_python.exists():
        args.skipped = f"pyspark-sortbykey ({args.peers_python} missing: make bench-peers)"
    else:
        names.append("pyspark-sortbykey")
    version = subprocess.run(["sort", "--version"], capture_output=True, text=True, check=False)
    print(f"gnu sort: {version.stdout.splitlines()[0] if version.stdout else '?'}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.cache_dir))
    results: dict[str, list[Measurement]] = collections.defaultdict(list)
    try:
        manifest = write_manifest(data, work)
        for rep in range(args.repeat):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                measured, parts = run_contender(name, data, manifest, work, args)
                checked = teravalidate(parts, meta)
                for part in parts:
                    part.unlink()
                results[name].append(measured)
                print(
                    f"  run {rep + 1}/{args.repeat} {name:<18} {measured.wall:7.2f} s  "
                    f"CPU {measured.cpu:6.2f} s  peak {fmt_mib(measured.tree_peak_rss)}  "
                    f"load {measured.load[0]:.2f}  ({checked.rows} records in "
                    f"{checked.files} file(s) validated)",
                    flush=True,
                )
        ordered = {n: results[n] for n in names}
        print()
        print(report(ordered, size, args))
        runs = {n: [m.__dict__ for m in r] for n, r in ordered.items()}
        write_json(args.json, {"input_bytes": size, "args": vars(args), "runs": runs})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
