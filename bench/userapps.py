"""Benchmark: apps written the way users write them, kubemr against the same functions
run alone and on Dask bag and PySpark RDD.

Run it with ``make bench-userapps`` or::

    .venv/bin/python bench/userapps.py [--size-mb 256] [--repeat 3] [--apps wordcount,index,grep]

The apps are plain user apps, with no fast path (``examples/apps/plain*.py``):

- ``wordcount``: ``map`` yields ``(word, 1)`` per ``[A-Za-z]+`` match of a line;
  ``combine`` and ``reduce`` sum.
- ``index``: an inverted index: ``map`` yields ``(word, path)`` once per distinct
  lower-cased word of a line; ``combine`` keeps each path once; ``reduce`` joins them.
- ``grep``: ``map`` yields ``(line, path)`` for lines matching ``[Hh]olmes|Watson`` (under
  1% of the corpus's lines); no combiner.

The input is the wordcount benchmark's corpus (bench/wordcount.py: the Gutenberg books
repeated to ``--size-mb``), cut at line ends into 8 files of about equal size in one
directory, so that the index has paths to tell apart.

Contenders, each a child process of this script, interleaved in a rotating order:

- ``kubemr``: ``kubemr run`` of a manifest naming the app's file: 2 mappers, 1 reducer,
  ``reduceTasks: 2``, every other setting at its default (splitSize, bufferSize 32Mi,
  streaming shuffle, the combiner when the app has one).
- ``kubemr-pure`` (``--pure``): the same with the native core off (``KUBEMR_NATIVE=0``).
- ``alone-2proc``: the app's functions alone in 2 processes (bench/peers.py ``python``).
- ``dask-bag``, ``pyspark-rdd``: the same functions on Dask bag and PySpark RDD
  (bench/peers.py), if ``--peers-python`` (default ``.cache/bench-venv/bin/python``, made
  by ``make bench-peers``) exists; else they are skipped, and the report says so.

Every run's output must equal kubemr's, line for line (sorted). Wall time is spawn to
exit; CPU time (user + system of the whole tree) and peak RSS (largest process) come
from ``os.wait4``. The report prints medians and the ratios kubemr / each baseline.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from wordcount import (
    DEFAULT_DATA,
    MB,
    MIB,
    Measurement,
    add_common_args,
    build_corpus,
    fail,
    fmt_mib,
    kubemr_command,
    line_aligned_ranges,
    load_line,
    timed_child,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers.py"
APPS: dict[str, tuple[str, dict[str, str]]] = {
    "wordcount": ("examples/apps/plainwordcount.py:WordCount", {}),
    "index": ("examples/apps/plainindex.py:InvertedIndex", {}),
    "grep": ("examples/apps/plaingrep.py:Grep", {"pattern": "[Hh]olmes|Watson"}),
}
FILES = 8
ENGINES = {"alone-2proc": "python", "dask-bag": "dask", "pyspark-rdd": "spark"}
TARGETS = {"alone-2proc": 1.5, "dask-bag": 1.0}
"""Issue #16's targets: kubemr wall / baseline wall at most this."""


def input_dir(corpus: Path, cache: Path) -> Path:
    """The corpus cut at line ends into ``FILES`` files in one directory (cached)."""
    directory = cache / f"{corpus.stem}-{FILES}files"
    stamp = directory / "_complete"
    if stamp.exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    with corpus.open("rb") as source:
        for index, (start, end) in enumerate(line_aligned_ranges(corpus, FILES)):
            source.seek(start)
            (directory / f"part{index}.txt").write_bytes(source.read(end - start))
    stamp.touch()
    return directory


def write_manifest(app: str, inputs: Path, work: Path) -> Path:
    module, app_args = APPS[app]
    manifest = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": f"bench-{app}"},
        "spec": {
            "app": {"module": str(ROOT / module), "args": app_args},
            "input": {"paths": [str(inputs)]},
            "output": {"path": str(work / f"kubemr-{app}"), "overwrite": True},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 1},
        },
    }
    path = work / f"{app}.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


PURE = {"KUBEMR_NATIVE": "0"}
"""The environment of ``kubemr-pure``: kubemr with its native core off."""


def run_kubemr(
    app: str, manifest: Path, work: Path, name: str = "kubemr"
) -> tuple[Measurement, list[str]]:
    log = work / f"{name}-{app}.log"
    load = os.getloadavg()[0]
    argv = [*kubemr_command(), "run", str(manifest), "--quiet"]
    wall, code, peak, cpu = timed_child(argv, log, PURE if name == "kubemr-pure" else None)
    if code != 0:
        fail(f"kubemr run ({app})", code, log)
    out = work / f"kubemr-{app}"
    summary = json.loads((out / "_summary.json").read_text(encoding="utf-8"))
    lines = sorted(
        line
        for part in sorted(out.glob("part-*"))
        for line in part.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    )
    rss = {str(k): int(v) for k, v in summary.get("peakRssBytes", {}).items()}
    extra = {"job_seconds": summary.get("wallSeconds"), "map_tasks": summary.get("mapTasks")}
    measured = Measurement(name, wall, peak, cpu, rss, (load, os.getloadavg()[0]), extra)
    return measured, lines


def run_peer(
    name: str, python: str, app: str, inputs: Path, work: Path
) -> tuple[Measurement, list[str]]:
    module, app_args = APPS[app]
    out = work / f"{name}-{app}.out"
    log = work / f"{name}-{app}.log"
    argv = [python, str(PEERS), "--engine", ENGINES[name], "--app", str(ROOT / module)]
    argv += ["--args", json.dumps(app_args), "--inputs", str(inputs), "--out", str(out)]
    load = os.getloadavg()[0]
    wall, code, peak, cpu = timed_child(argv, log)
    if code != 0:
        fail(f"{name} ({app})", code, log)
    lines = out.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    rss = json.loads(Path(f"{out}.rss.json").read_text(encoding="utf-8"))
    return Measurement(name, wall, peak, cpu, rss, (load, os.getloadavg()[0])), lines


def check_same(app: str, name: str, got: list[str], want: list[str]) -> None:
    if got == want:
        return
    extra = sorted(set(got) - set(want))[:3]
    missing = sorted(set(want) - set(got))[:3]
    raise SystemExit(
        f"bench: {name} ({app}) wrote {len(got)} lines, kubemr {len(want)}; "
        f"only {name}: {extra}; only kubemr: {missing}"
    )


def report(
    results: dict[str, dict[str, list[Measurement]]], size: int, args: argparse.Namespace
) -> str:
    lines = [
        f"user apps, {size / MIB:.1f} MiB in {FILES} files, medians of {args.repeat} run(s); "
        "MB = 10^6 bytes",
    ]
    for app, by_name in results.items():
        lines += [
            "",
            f"{app}:",
            f"  {'contender':<13} {'wall s':>8} {'MB/s':>7} {'CPU s':>8} {'peak RSS':>10}",
        ]
        wall = {n: statistics.median(m.wall for m in runs) for n, runs in by_name.items()}
        for name, runs in by_name.items():
            cpu = statistics.median(m.cpu for m in runs)
            peak = statistics.median(m.tree_peak_rss for m in runs)
            lines.append(
                f"  {name:<13} {wall[name]:>8.2f} {size / MB / wall[name]:>7.1f} "
                f"{cpu:>8.2f} {fmt_mib(peak):>10}"
            )
        cpus = {n: statistics.median(m.cpu for m in runs) for n, runs in by_name.items()}
        for name in by_name:
            if name == "kubemr":
                continue
            ratio = wall["kubemr"] / wall[name]
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                verdict = f"   (target <= {target}: {'met' if ratio <= target else 'MISSED'})"
            lines.append(
                f"  kubemr / {name} = {ratio:.2f} wall, {cpus['kubemr'] / cpus[name]:.2f} CPU"
                f"{verdict}"
            )
        kube = by_name["kubemr"]
        lines.append(
            f"  kubemr: {kube[0].extra['map_tasks']} map tasks; worker peak RSS "
            f"{fmt_mib(max(max(m.process_rss.values(), default=0) for m in kube))}"
        )
    if args.skipped:
        lines += ["", f"skipped: {args.skipped}"]
    lines.append(load_line(m for by_name in results.values() for r in by_name.values() for m in r))
    lines.append("outputs: every contender == kubemr, line for line (checked every run)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=256, help="corpus size, MiB")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated: " + ",".join(APPS))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the books")
    add_common_args(parser, "Dask and PySpark")
    parser.add_argument("--skip", default="", help="contenders to leave out, comma-separated")
    args = parser.parse_args(argv)
    args.apps = [a for a in args.apps.split(",") if a]
    if unknown := [a for a in args.apps if a not in APPS]:
        parser.error(f"--apps: unknown {unknown}; known: {list(APPS)}")
    if args.repeat < 1 or args.size_mb <= 0:
        parser.error("--repeat must be >= 1 and --size-mb > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpus, meta = build_corpus(args.data, int(args.size_mb * MIB), args.cache_dir)
    size = int(meta["bytes"])
    inputs = input_dir(corpus, args.cache_dir)
    names = ["kubemr", *(["kubemr-pure"] if args.pure else []), "alone-2proc"]
    args.skipped = ""
    if args.no_peers:
        args.skipped = "dask-bag, pyspark-rdd (--no-peers)"
    elif not args.peers_python.exists():
        args.skipped = f"dask-bag, pyspark-rdd ({args.peers_python} missing: make bench-peers)"
    else:
        names += ["dask-bag", "pyspark-rdd"]
    if skip := [n for n in args.skip.split(",") if n and n != "kubemr"]:
        names = [n for n in names if n not in skip]
        args.skipped = ", ".join(filter(None, [args.skipped, f"{','.join(skip)} (--skip)"]))
    print(f"input: {inputs} ({size} bytes in {FILES} files)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.cache_dir))
    results: dict[str, dict[str, list[Measurement]]] = {}
    try:
        for app in args.apps:
            manifest = write_manifest(app, inputs, work)
            by_name: dict[str, list[Measurement]] = collections.defaultdict(list)
            reference: list[str] | None = None
            pending: list[tuple[str, list[str]]] = []
            for rep in range(args.repeat):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for name in order:
                    if name.startswith("kubemr"):
                        measured, lines = run_kubemr(app, manifest, work, name)
                        reference = reference or lines
                    else:
                        python = sys.executable if name == "alone-2proc" else args.peers_python
                        measured, lines = run_peer(name, str(python), app, inputs, work)
                    pending.append((name, lines))
                    if reference is not None:
                        for done, got in pending:
                            check_same(app, done, got, reference)
                        pending.clear()
                    by_name[name].append(measured)
                    print(
                        f"  {app} run {rep + 1}/{args.repeat} {name:<12} {measured.wall:7.2f} s"
                        f"  CPU {measured.cpu:6.2f} s  peak {fmt_mib(measured.tree_peak_rss)}"
                        f"  load {measured.load[0]:.2f}",
                        flush=True,
                    )
            results[app] = {n: by_name[n] for n in names}
        print()
        print(report(results, size, args))
        runs = {
            app: {n: [m.__dict__ for m in r] for n, r in by_name.items()}
            for app, by_name in results.items()
        }
        write_json(args.json, {"corpus_bytes": size, "args": vars(args), "runs": runs})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
