"""Benchmark: wordcount on a corpus built from the Gutenberg books, kubemr against baselines.

Run it with ``make bench`` or::

    .venv/bin/python bench/wordcount.py [--size-mb 256] [--repeat 3]

What it does, in one run:

1. Builds the corpus once and caches it under ``.cache/bench/`` (git-ignored): the
   sample books (``../shared/data/gutenberg/*.txt``, sorted by name, each ending in a
   newline) concatenated over and over into ONE file, cut at the last whole line that
   fits in ``--size-mb`` MiB. A JSON file next to it records its sources, so it is
   rebuilt when they change.
2. Runs, interleaved per repetition (the order rotates every repetition, so that
   machine noise and cache effects hit every contender alike):

   - ``kubemr``: the real CLI, ``kubemr run <manifest> --quiet``, on a generated
     manifest: 2 mappers, 1 reducer, ``reduceTasks: 2``, ``splitSize`` unset (the default;
     4 map tasks at 256 MiB), streaming shuffle, ``bufferSize`` 32Mi (default), the
     combiner on (default; ``--no-combine`` turns it off, so that every word goes
     through the map sort buffer and its spills).
   - ``python-1proc``: ``re.findall(rb"[A-Za-z]+")`` + ``collections.Counter`` over the
     corpus read in 4 MiB line-aligned chunks, in one process.
   - ``python-2proc``: the same in a 2-process ``multiprocessing.Pool``, one line-aligned
     half of the corpus each, counters merged in the parent.
   - ``c-2thread``: the C limit, ``bench/wordcount.c`` (compiled with ``cc -O2`` into the
     cache): the same words counted by two threads, one line-aligned half each, into
     open-addressing hash tables.

   Every contender runs as a child process; its wall time is measured from spawn to
   exit by this script; its CPU time (user + system, the whole process tree) and peak
   RSS (the largest process of the tree) come from ``os.wait4``. CPU time is the figure
   that machine load disturbs least. kubemr's per-worker peaks come from the job summary
   (``peakRssBytes``, which every worker reports from ``getrusage``); the baselines
   report their own and their pool workers' peaks.
3. Checks that every run counted the same words. kubemr's word is a run of
   ``str.isalpha`` characters; the baseline's is a run of ``[A-Za-z]``. On ASCII text
   they are the same, so on an all-ASCII corpus (the Gutenberg books are) kubemr's
   output must equal the baseline's counts key for key. If the corpus has non-ASCII
   bytes, the reference is corrected exactly: the lines holding non-ASCII bytes are
   recounted with kubemr's per-line definition (``kubemr.apps.wordcount.words``, the one
   the sequential oracle uses) in place of the regex.
4. Prints a table of medians, the ratios kubemr/baseline and the target check
   (kubemr no slower than 1.3x the 2-process baseline). ``--json FILE`` also writes
   every measurement.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gutenberg"
DEFAULT_CACHE = ROOT / ".cache" / "bench"
MIB = 2**20
MB = 10**6
CHUNK = 4 * MIB
WORD = re.compile(rb"[A-Za-z]+")
TARGET_RATIO = 1.3
CONTENDERS = ("kubemr", "python-1proc", "python-2proc", "c-2thread")
C_SOURCE = Path(__file__).resolve().parent / "wordcount.c"


# --- corpus -----------------------------------------------------------------------------


def build_corpus(data_dir: Path, size: int, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The cached corpus of at most ``size`` bytes (whole lines), built if missing/stale."""
    sources = sorted(data_dir.glob("*.txt"))
    if not sources:
        raise SystemExit(f"bench: no *.txt files in {data_dir}")
    fingerprint = hashlib.sha256()
    for src in sources:
        stat = src.stat()
        fingerprint.update(f"{src.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    wanted = {"size_limit": size, "sources": fingerprint.hexdigest()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    corpus = cache_dir / f"corpus-{size}.txt"
    meta_path = corpus.with_suffix(".json")
    if corpus.exists() and meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if {k: meta.get(k) for k in wanted} == wanted and corpus.stat().st_size == meta["bytes"]:
            return corpus, meta
    unit = bytearray()
    for src in sources:
        data = src.read_bytes()
        unit += data if data.endswith(b"\n") else data + b"\n"
    if not unit.strip():
        raise SystemExit(f"bench: the books in {data_dir} are empty")
    written = 0
    ascii_only = unit.isascii()
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".corpus-")
    with os.fdopen(fd, "wb") as out:
        while written < size:
            piece = memoryview(unit)[: size - written]
            if len(piece) < len(unit):  # the last copy: cut after its last whole line
                piece = piece[: bytes(piece).rfind(b"\n") + 1]
                if not piece:
                    break
            out.write(piece)
            written += len(piece)
    os.replace(tmp, corpus)
    meta = {**wanted, "bytes": written, "ascii": ascii_only, "files": [s.name for s in sources]}
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return corpus, meta


def line_aligned_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """Cut a file into ``parts`` byte ranges, each ending just after a newline."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as stream:
        for i in range(1, parts):
            stream.seek(max(size * i // parts - 1, bounds[-1]))
            stream.readline()
            bounds.append(min(max(stream.tell(), bounds[-1]), size))
    bounds.append(size)
    return list(itertools.pairwise(bounds))


# --- the baselines (run as child processes of this script) -------------------------------


def count_range(span: tuple[str, int, int]) -> Counter[bytes]:
    """``re.findall(rb"[A-Za-z]+")`` + Counter over a byte range, read in line-aligned
    4 MiB chunks (so no word is cut)."""
    path, start, end = span
    counts: Counter[bytes] = Counter()
    with open(path, "rb") as stream:
        stream.seek(start)
        left = end - start
        carry = b""
        while left > 0:
            data = stream.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            data = carry + data
            cut = data.rfind(b"\n") + 1 if left > 0 else len(data)
            if cut == 0:
                carry = data
                continue
            carry = data[cut:]
            counts.update(WORD.findall(data, 0, cut))
        counts.update(WORD.findall(carry))
    return counts


def baseline_child(procs: int, corpus: Path, result: Path) -> None:
    """The body of a baseline run: count, then pickle the counts and peak RSS."""
    import multiprocessing  # noqa: PLC0415
    import resource  # noqa: PLC0415

    if procs == 1:
        counts = count_range((str(corpus), 0, corpus.stat().st_size))
    else:
        spans = [(str(corpus), a, b) for a, b in line_aligned_ranges(corpus, procs)]
        pool = multiprocessing.Pool(procs)
        parts = pool.map(count_range, spans, chunksize=1)
        pool.close()
        pool.join()
        counts = parts[0]
        for other in parts[1:]:
            counts.update(other)
    rss = {"parent": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if procs > 1:  # Linux: the largest waited-for child
        rss["largest pool worker"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    with result.open("wb") as out:
        pickle.dump({"counts": dict(counts), "rss": rss}, out, protocol=pickle.HIGHEST_PROTOCOL)


# --- running and measuring ---------------------------------------------------------------


@dataclass
class Measurement:
    """One run of one contender."""

    name: str
    wall: float
    tree_peak_rss: int
    cpu: float
    process_rss: dict[str, int] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)


def timed_child(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[float, int, int, float]:
    """Run a child (with ``env`` added to this environment); return its wall seconds,
    exit code, the peak RSS of its largest process and the CPU seconds (user + system)
    of it and every descendant it reaped."""
    with log.open("wb") as sink:
        started = time.perf_counter()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env={**os.environ, **env} if env else None,
        )
        _, status, usage = os.wait4(popen.pid, 0)
        wall = time.perf_counter() - started
    popen.returncode = os.waitstatus_to_exitcode(status)
    return wall, popen.returncode, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def fail(what: str, code: int, log: Path) -> None:
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    raise SystemExit(f"bench: {what} exited with code {code}:\n{tail}")


def run_baseline(procs: int, corpus: Path, work: Path) -> tuple[Measurement, dict[bytes, int]]:
    result = work / f"baseline-{procs}.pickle"
    log = work / f"baseline-{procs}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--baseline-child", str(procs)]
    argv += ["--corpus", str(corpus), "--result", str(result)]
    load_before = os.getloadavg()[0]
    wall, code, peak, cpu = timed_child(argv, log)
    if code != 0:
        fail(f"the {procs}-process baseline", code, log)
    with result.open("rb") as stream:
        data = pickle.load(stream)
    result.unlink()
    name = "python-1proc" if procs == 1 else "python-2proc"
    load = (load_before, os.getloadavg()[0])
    return Measurement(name, wall, peak, cpu, data["rss"], load), data["counts"]


def build_c(cache: Path) -> Path:
    """Compile bench/wordcount.c (``cc -O2 -pthread``) into the cache, if it changed."""
    program = cache / "wordcount-c"
    if program.exists() and program.stat().st_mtime >= C_SOURCE.stat().st_mtime:
        return program
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("bench: no C compiler (cc) for the c-2thread contender")
    subprocess.run([compiler, "-O2", "-pthread", "-o", str(program), str(C_SOURCE)], check=True)
    return program


def run_c(program: Path, corpus: Path, work: Path) -> tuple[Measurement, dict[bytes, int]]:
    """The C limit: bench/wordcount.c, 2 threads (its output is its log)."""
    out = work / "c-2thread.out"
    load_before = os.getloadavg()[0]
    wall, code, peak, cpu = timed_child([str(program), str(corpus)], out)
    if code != 0:
        fail("the C program", code, out)
    counts: dict[bytes, int] = {}
    for line in out.read_bytes().splitlines():
        word, _, count = line.partition(b"\t")
        counts[word] = int(count)
    out.unlink()
    load = (load_before, os.getloadavg()[0])
    return Measurement("c-2thread", wall, peak, cpu, {"process": peak}, load), counts


def kubemr_command() -> list[str]:
    script = Path(sys.executable).parent / "kubemr"
    if script.exists():
        return [str(script)]
    found = shutil.which("kubemr")
    return [found] if found else [sys.executable, "-m", "kubemr"]


def write_manifest(args: argparse.Namespace, corpus: Path, size: int, work: Path) -> Path:
    manifest = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "bench-wordcount"},
        "spec": {
            "app": {"builtin": "wordcount"},
            "input": {"paths": [str(corpus)]},
            "output": {"path": str(work / "kubemr-out"), "overwrite": True},
            "reduceTasks": args.reduce_tasks,
            "mapper": {"replicas": args.mappers},
            "reducer": {"replicas": args.reducers},
            "shuffle": {"mode": "streaming", "bufferSize": args.buffer_size},
            "combine": args.combine,
        },
    }
    path = work / "wordcount-bench.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


class TreePss:
    """The peak of the summed PSS (proportional set size: shared pages split among the
    processes sharing them) of this process's descendants, sampled every ``interval``
    seconds in a thread from ``/proc/<pid>/smaps_rollup`` (Linux)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil  # noqa: PLC0415 (dev extra; only this sampler needs it)

        me = psutil.Process()
        while not self._stop.wait(self.interval):
            total = 0
            for child in me.children(recursive=True):
                try:
                    rollup = Path(f"/proc/{child.pid}/smaps_rollup").read_text(encoding="ascii")
                except OSError:
                    continue  # gone between the listing and the read
                for line in rollup.splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            self.samples += 1
            self.peak = max(self.peak, total)


def run_kubemr(manifest: Path, out: Path, work: Path) -> tuple[Measurement, dict[str, int]]:
    log = work / "kubemr.log"
    load_before = os.getloadavg()[0]
    with TreePss() as pss:
        argv = [*kubemr_command(), "run", str(manifest), "--quiet"]
        wall, code, peak, cpu = timed_child(argv, log)
    if code != 0:
        fail("kubemr run", code, log)
    summary = json.loads((out / "_summary.json").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for part in sorted(out.glob("part-*")):
        with part.open(encoding="utf-8", errors="surrogateescape", newline="\n") as lines:
            for line in lines:
                key, _, value = line.rstrip("\n").rpartition("\t")
                counts[key] = int(value)
    extra = {
        "job_seconds": summary.get("wallSeconds"),
        "phase_seconds": summary.get("phaseSeconds", {}),
        "task_seconds": summary.get("taskSeconds", {}),
        "map_tasks": summary.get("mapTasks"),
        "tree_peak_pss": pss.peak,
    }
    rss = {
        re.sub(r"^(?:map|reduce)-\d+-", "", str(k)): int(v)
        for k, v in summary.get("peakRssBytes", {}).items()
    }
    load = (load_before, os.getloadavg()[0])
    return Measurement("kubemr", wall, peak, cpu, rss, load, extra), counts


# --- correctness -------------------------------------------------------------------------


def reference_counts(corpus: Path, ascii_only: bool, baseline: dict[bytes, int]) -> dict[str, int]:
    """kubemr's expected output: the baseline's counts, with the lines holding non-ASCII
    bytes recounted by the per-line definition (str.isalpha runs) if there are any."""
    expected = Counter({k.decode("ascii"): v for k, v in baseline.items()})
    if ascii_only:
        return dict(expected)
    from kubemr.apps.wordcount import words  # noqa: PLC0415

    non_ascii_line = re.compile(rb"[^\n]*[\x80-\xff][^\n]*")
    with corpus.open("rb") as stream:
        carry = b""
        while True:
            data = stream.read(CHUNK)
            block = carry + data
            cut = block.rfind(b"\n") + 1 if data else len(block)
            carry = block[cut:]
            for line in non_ascii_line.findall(block, 0, cut):
                expected.subtract(k.decode("ascii") for k in WORD.findall(line))
                text = line.decode("utf-8", "surrogateescape").removesuffix("\r")
                expected.update(words(text))
            if not data:
                break
    return {k: v for k, v in expected.items() if v}


def check_counts(what: str, got: dict[Any, int], want: dict[Any, int]) -> None:
    if got == want:
        return
    missing = [k for k in want if k not in got][:5]
    extra = [k for k in got if k not in want][:5]
    wrong = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:5]
    raise SystemExit(
        f"bench: {what} counted differently: {len(got)} vs {len(want)} words; "
        f"missing {missing}, unexpected {extra}, wrong (word, got, want) {wrong}"
    )


# --- shared by the benchmarks that import this one (userapps.py, terasort.py) ------------

PEERS_PYTHON = ROOT / ".cache" / "bench-venv" / "bin" / "python"
"""The bench peers' virtualenv (``make bench-peers``): Dask and PySpark, kept out of the
project's."""


def add_common_args(parser: argparse.ArgumentParser, peers: str) -> None:
    """``--repeat``, ``--cache-dir``, ``--peers-python``, ``--no-peers`` and ``--json``."""
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help=f"the Python with {peers} (make bench-peers)",
    )
    parser.add_argument("--no-peers", action="store_true", help=f"skip {peers}")
    parser.add_argument(
        "--pure",
        action="store_true",
        help="also run kubemr with its native core off (KUBEMR_NATIVE=0): kubemr-pure",
    )
    parser.add_argument("--json", type=Path, help="also write every measurement here")


def load_line(measurements: Iterable[Measurement]) -> str:
    """The report's line on machine load around the runs."""
    loads = [x for m in measurements for x in m.load]
    return (
        f"load average (1 min) around the runs: min {min(loads):.2f}, max {max(loads):.2f}; "
        f"{os.cpu_count()} CPUs"
    )


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` (``--json``), if given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")


# --- report ------------------------------------------------------------------------------


def fmt_mib(n: float) -> str:
    return f"{n / MIB:.0f} MiB"


def report(results: dict[str, list[Measurement]], size: int, args: argparse.Namespace) -> str:
    wall = {name: statistics.median(m.wall for m in runs) for name, runs in results.items()}
    peak = {
        name: statistics.median(m.tree_peak_rss for m in runs) for name, runs in results.items()
    }
    cpu = {name: statistics.median(m.cpu for m in runs) for name, runs in results.items()}
    lines = [
        f"wordcount, {size / MIB:.1f} MiB corpus ({size} bytes), "
        f"medians of {args.repeat} run(s); MB = 10^6 bytes",
        "",
        f"{'contender':<14} {'wall s':>8} {'MB/s':>8} {'CPU s':>8} "
        f"{'peak RSS (largest process)':>28}",
    ]
    for name in CONTENDERS:
        lines.append(
            f"{name:<14} {wall[name]:>8.2f} {size / MB / wall[name]:>8.1f} "
            f"{cpu[name]:>8.2f} {fmt_mib(peak[name]):>28}"
        )
    lines.append("")
    lines.append("peak RSS per process (median):")
    for name in CONTENDERS:
        keys = sorted({k for m in results[name] for k in m.process_rss})
        per = [
            f"{k} {fmt_mib(statistics.median(m.process_rss.get(k, 0) for m in results[name]))}"
            for k in keys
        ]
        lines.append(f"  {name}: {', '.join(per)}")
    ratio2 = wall["kubemr"] / wall["python-2proc"]
    ratio1 = wall["kubemr"] / wall["python-1proc"]
    lines += [
        "",
        f"kubemr / python-2proc = {ratio2:.2f}   (target <= {TARGET_RATIO}: "
        f"{'met' if ratio2 <= TARGET_RATIO else 'MISSED'})",
        f"kubemr / python-1proc = {ratio1:.2f}",
        f"CPU seconds, kubemr / python-2proc = {cpu['kubemr'] / cpu['python-2proc']:.2f}",
        f"kubemr / c-2thread = {wall['kubemr'] / wall['c-2thread']:.2f} (the C limit; "
        f"python-2proc / c-2thread = {wall['python-2proc'] / wall['c-2thread']:.2f})",
    ]
    kube = results["kubemr"]
    job = statistics.median(float(m.extra["job_seconds"] or 0.0) for m in kube)
    worker_peak = max(max(m.process_rss.values(), default=0) for m in kube)
    tree_pss = statistics.median(int(m.extra["tree_peak_pss"]) for m in kube)
    lines += [
        f"kubemr: whole-tree peak PSS {fmt_mib(tree_pss)} (every process of the job, sampled "
        f"every 0.25 s; target <= 300 MiB at 1 GiB: "
        f"{'met' if tree_pss <= 300 * MIB else 'MISSED'})",
        f"kubemr: {kube[0].extra['map_tasks']} map tasks; job (master start to commit) "
        f"{job:.2f} s of the {wall['kubemr']:.2f} s wall",
        f"kubemr: largest worker peak RSS {fmt_mib(worker_peak)} = bufferSize "
        f"{fmt_mib(args.buffer_size)} + {fmt_mib(worker_peak - args.buffer_size)}",
    ]
    loads = [x for runs in results.values() for m in runs for x in m.load]
    lines.append(
        f"load average (1 min) around the runs: min {min(loads):.2f}, max {max(loads):.2f}; "
        f"{os.cpu_count()} CPUs"
    )
    lines.append("counts: kubemr == python-1proc == python-2proc == c-2thread (checked every run)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=256, help="corpus size, MiB")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the books")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--mappers", type=int, default=2)
    parser.add_argument("--reducers", type=int, default=1)
    parser.add_argument("--reduce-tasks", type=int, default=2)
    parser.add_argument("--buffer-size", type=int, default=32 * MIB, help="bytes")
    parser.add_argument(
        "--no-combine",
        dest="combine",
        action="store_false",
        help="run kubemr without the combiner (every word goes through the sort buffer)",
    )
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--baseline-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mb <= 0:
        parser.error("--repeat must be >= 1 and --size-mb > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.baseline_child:
        baseline_child(args.baseline_child, args.corpus, args.result)
        return
    corpus, meta = build_corpus(args.data, int(args.size_mb * MIB), args.cache_dir)
    size = int(meta["bytes"])
    print(
        f"corpus: {corpus} ({size} bytes, {'ASCII' if meta['ascii'] else 'not ASCII'})",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.cache_dir))
    try:
        manifest = write_manifest(args, corpus, size, work)
        c_program = build_c(args.cache_dir)
        results: dict[str, list[Measurement]] = collections.defaultdict(list)
        reference: dict[str, int] | None = None
        first: dict[bytes, int] | None = None
        unchecked: list[dict[str, int]] = []  # kubemr outputs waiting for the reference
        for rep in range(args.repeat):
            turn = rep % len(CONTENDERS)
            order = CONTENDERS[turn:] + CONTENDERS[:turn]
            for name in order:
                if name == "kubemr":
                    measured, kube_counts = run_kubemr(manifest, work / "kubemr-out", work)
                    unchecked.append(kube_counts)
                else:
                    if name == "c-2thread":
                        measured, counts = run_c(c_program, corpus, work)
                    else:
                        procs = 1 if name == "python-1proc" else 2
                        measured, counts = run_baseline(procs, corpus, work)
                    first = first or counts
                    check_counts(name, counts, first)
                    if reference is None:
                        reference = reference_counts(corpus, bool(meta["ascii"]), counts)
                if reference is not None:
                    for kube_counts in unchecked:
                        check_counts("kubemr", kube_counts, reference)
                    unchecked.clear()
                results[name].append(measured)
                print(
                    f"  run {rep + 1}/{args.repeat} {name:<13} {measured.wall:7.2f} s  "
                    f"CPU {measured.cpu:6.2f} s  peak {fmt_mib(measured.tree_peak_rss)}  "
                    f"load {measured.load[0]:.2f}",
                    flush=True,
                )
        print()
        print(report(results, size, args))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps(
                    {
                        "corpus_bytes": size,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "runs": {
                            name: [m.__dict__ for m in runs] for name, runs in results.items()
                        },
                    },
                    indent=2,
                    default=str,
                ),
                encoding="utf-8",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
