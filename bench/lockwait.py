"""Benchmark: the reducer's lock wait and buffer occupancy, read from kubemr's own metrics.

Run it with ``make bench-lockwait`` or::

    .venv/bin/python bench/lockwait.py [--size-mb 32] [--repeat 3] [--json FILE]

What it does:

1. Builds a corpus once (the Gutenberg books concatenated into one file of ``--size-mb``
   MiB, cached under ``.cache/bench/``, as ``bench/wordcount.py`` does).
2. Runs a reducer-heavy job on it with ``kubemr run --metrics``, in streaming mode, at the
   default shuffle settings (bufferSize 32Mi, chunkSize 1Mi, parallelFetches 4): the app
   below sends every input line through the shuffle (key: its first word, value: the
   line, no combiner), so the reducers receive the whole corpus. 2 mappers, 2 reducers,
   2 reduce tasks.
3. Runs it in two builds, interleaved per repetition: ``default``, and ``coarse``
   (``KUBEMR_COARSE_LOCK=1``: reducers hold their fetch buffer's lock while they parse
   fetched chunks and while they reduce; the seeds' mistake).
4. While each job runs, samples every reducer's and mapper's ``/metrics`` every
   ``--interval`` seconds (buffer occupancy over time); at the end reads the final figures
   from ``_summary.json`` (``metrics``). Reports, per build: lock wait as a share of
   reducer time (the sum of ``kubemr_fetch_buffer_lock_wait_seconds`` over the sum of
   ``kubemr_task_duration_seconds{phase="reduce"}``), lock hold, the waits for fetch
   slots and for map outputs, peak buffer occupancy, and an occupancy-over-time strip.
   ``--plot FILE`` draws the occupancy series with matplotlib, if it is installed.

Lock wait is summed over the reducer's concurrent fetch streams, so it can exceed the
reducer's wall time when the streams queue behind one another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from wordcount import DEFAULT_CACHE, DEFAULT_DATA, MIB, build_corpus  # noqa: E402

BUILDS = {"default": {}, "coarse": {"KUBEMR_COARSE_LOCK": "1"}}
SAMPLED = (
    "kubemr_fetch_buffer_bytes",
    "kubemr_fetch_inflight_bytes",
    "kubemr_fetch_sources_active",
    "kubemr_fetch_sources_waiting",
    "kubemr_map_sort_buffer_bytes",
    "kubemr_fetch_buffer_lock_wait_seconds_sum",
)
STRIP = " .:-=+*#%@"


class ReducerHeavy:
    """The benchmark's app: every line goes through the shuffle; reduce reads every value."""

    def map(self, key: str, line: str) -> Iterator[tuple[str, str]]:
        words = line.split(maxsplit=1)
        if words:
            yield words[0].lower(), line

    def reduce(self, key: str, values: Iterable[str]) -> Iterator[tuple[str, int]]:
        count = chars = 0
        for value in values:
            count += 1
            chars += len(value)
        yield key, chars * 1000 + count


def manifest(corpus: Path, out: Path, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "bench-lockwait"},
        "spec": {
            "app": {"module": f"{Path(__file__).resolve()}:ReducerHeavy"},
            "input": {"paths": [str(corpus)], "splitSize": "2Mi"},
            "output": {"path": str(out), "overwrite": True},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 2},
            "shuffle": {"mode": mode},
        },
    }


def scrape(url: str) -> dict[str, float]:
    """The sampled values of one process (summed over label sets)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SAMPLED:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def run_job(job: Path, env: dict[str, str], interval: float, log: Path) -> dict[str, Any]:
    """Run one job, sampling every process's metrics; return the samples and summary."""
    urls: dict[str, str] = {}
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubemr", "run", str(job), "--quiet", "--metrics"],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
        )

        def follow() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                sink.write(line)
                if line.startswith("metrics: "):
                    _, name, url = line.split()
                    urls[name] = url

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        while process.poll() is None:
            row: dict[str, Any] = {"t": time.monotonic() - started}
            for name, url in list(urls.items()):
                if name == "master":
                    continue
                try:
                    row[name] = scrape(url)
                except OSError:
                    continue
            samples.append(row)
            time.sleep(interval)
        reader.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"bench: kubemr run failed:\n{log.read_text()[-4000:]}")
    return {"wall": wall, "samples": samples}


def total(snapshot: dict[str, Any], family: str, key: str, **labels: str) -> float:
    """Sum of ``key`` (value, sum or count) of a family over every process's snapshot."""
    out = 0.0
    for process in snapshot.values():
        for row in process.get(family, []):
            if all(row["labels"].get(k) == v for k, v in labels.items()):
                out += row.get(key, 0.0)
    return out


def figures(summary: dict[str, Any], run: dict[str, Any]) -> dict[str, float]:
    snap = summary["metrics"]
    reducer_time = total(snap, "kubemr_task_duration_seconds", "sum", phase="reduce")
    wait = total(snap, "kubemr_fetch_buffer_lock_wait_seconds", "sum")
    peak_fetch = max(
        (
            v.get("kubemr_fetch_buffer_bytes", 0.0)
            for row in run["samples"]
            for k, v in row.items()
            if k.startswith("reducer")
        ),
        default=0.0,
    )
    return {
        "wall_s": run["wall"],
        "job_s": summary["wallSeconds"],
        "reducer_s": reducer_time,
        "lock_wait_s": wait,
        "lock_hold_s": total(snap, "kubemr_fetch_buffer_lock_hold_seconds", "sum"),
        "lock_acquisitions": total(snap, "kubemr_fetch_buffer_lock_wait_seconds", "count"),
        "lock_wait_share": wait / reducer_time if reducer_time else 0.0,
        "slot_wait_s": total(snap, "kubemr_fetch_slot_wait_seconds", "sum"),
        "map_output_wait_s": total(snap, "kubemr_map_output_wait_seconds", "sum"),
        "fetch_s": total(snap, "kubemr_phase_duration_seconds", "sum", phase="shuffle_fetch"),
        "reduce_s": total(snap, "kubemr_phase_duration_seconds", "sum", phase="reduce"),
        "shuffle_mib": total(snap, "kubemr_stage_input_bytes_total", "value", phase="shuffle_fetch")
        / MIB,
        "peak_fetch_buffer_mib": peak_fetch / MIB,
        "capacity_mib": max(
            (
                row["value"]
                for process in snap.values()
                for row in process.get("kubemr_fetch_buffer_capacity_bytes", [])
            ),
            default=0.0,
        )
        / MIB,
    }


def strip(run: dict[str, Any], metric: str, prefix: str, width: int = 60) -> str:
    """An occupancy-over-time strip: one character per time slot, darker is fuller."""
    series = [
        (row["t"], sum(v.get(metric, 0.0) for k, v in row.items() if k.startswith(prefix)))
        for row in run["samples"]
    ]
    if not series:
        return ""
    top = max(v for _, v in series) or 1.0
    end = series[-1][0] or 1.0
    slots = [0.0] * width
    for t, value in series:
        slot = min(int(t / end * width), width - 1)
        slots[slot] = max(slots[slot], value)
    return "".join(STRIP[min(int(v / top * (len(STRIP) - 1)), len(STRIP) - 1)] for v in slots)


def plot(runs: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 3 * len(runs)), sharex=True)
    for ax, (build, run) in zip(axes, runs.items(), strict=True):
        for metric, label in (
            ("kubemr_fetch_buffer_bytes", "fetch buffer (reducers)"),
            ("kubemr_fetch_inflight_bytes", "in flight (reducers)"),
            ("kubemr_map_sort_buffer_bytes", "sort buffer (mappers)"),
        ):
            prefix = "mapper" if "sort" in metric else "reducer"
            xs = [row["t"] for row in run["samples"]]
            ys = [
                sum(v.get(metric, 0.0) for k, v in row.items() if k.startswith(prefix)) / MIB
                for row in run["samples"]
            ]
            ax.plot(xs, ys, label=label)
        ax.set_title(f"{build}: buffer occupancy (MiB)")
        ax.legend(loc="upper left")
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument(
        "--mode",
        choices=("streaming", "barrier"),
        default="streaming",
        help="shuffle mode (barrier: every map output is fetched at once, at the end)",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--plot", type=Path, help="draw occupancy over time (needs matplotlib)")
    args = parser.parse_args()
    corpus, meta = build_corpus(args.data_dir, args.size_mb * MIB, args.cache_dir)
    results: dict[str, list[dict[str, float]]] = {build: [] for build in BUILDS}
    last: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lockwait-") as tmp:
        work = Path(tmp)
        for repetition in range(args.repeat):
            order = list(BUILDS)
            if repetition % 2:
                order.reverse()
            for build in order:
                out = work / f"out-{build}"
                job = work / f"{build}.json"
                job.write_text(json.dumps(manifest(corpus, out, args.mode)), encoding="utf-8")
                run = run_job(job, BUILDS[build], args.interval, work / f"{build}.log")
                summary = json.loads((out / "_summary.json").read_text(encoding="utf-8"))
                row = figures(summary, run)
                results[build].append(row)
                last[build] = run
                print(
                    f"run {repetition + 1} {build:<8} wall {row['wall_s']:6.2f}s  lock wait "
                    f"{row['lock_wait_s']:7.3f}s of {row['reducer_s']:6.2f}s reducer time "
                    f"({row['lock_wait_share']:.1%})",
                    flush=True,
                )
    keys = list(next(iter(results.values()))[0])
    print()
    print(
        f"reducer-heavy job, {meta['bytes'] / MIB:.1f} MiB corpus, {args.mode} shuffle, "
        f"default settings; medians of {args.repeat} run(s)"
    )
    print(f"{'figure':<24}" + "".join(f"{b:>12}" for b in BUILDS))
    medians = {
        b: {k: statistics.median(r[k] for r in rows) for k in keys} for b, rows in results.items()
    }
    for key in keys:
        cells = "".join(
            f"{medians[b][key]:>12.1%}" if key.endswith("share") else f"{medians[b][key]:>12.3f}"
            for b in BUILDS
        )
        print(f"{key:<24}{cells}")
    print()
    print("occupancy over time (last run; each character a slot of the run, darker = fuller):")
    for build, run in last.items():
        print(f"  {build:<8} fetch buffer  |{strip(run, 'kubemr_fetch_buffer_bytes', 'reducer')}|")
        print(
            f"  {build:<8} in flight     |{strip(run, 'kubemr_fetch_inflight_bytes', 'reducer')}|"
        )
        print(
            f"  {build:<8} sort buffer   |{strip(run, 'kubemr_map_sort_buffer_bytes', 'mapper')}|"
        )
    share = medians["default"]["lock_wait_share"]
    print()
    print(
        f"target: lock wait under 5 % of reducer time at the default settings: "
        f"{share:.2%} {'met' if share < 0.05 else 'MISSED'}"
    )
    if args.plot is not None:
        print(f"plot: {args.plot}" if plot(last, args.plot) else "plot: matplotlib not installed")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"medians": medians, "runs": results, "series": last}, indent=1),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
