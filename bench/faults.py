"""Benchmark: kubemr under faults against the same job healthy, in the same run.

Run it with ``make bench-faults`` or::

    .venv/bin/python bench/faults.py [--size-mb 256] [--repeat 5] [--json FILE]

What it does, in one run:

1. Builds (or reuses) the corpus of ``bench/wordcount.py``: the Gutenberg books
   (``../shared/data/gutenberg/*.txt``) concatenated into one file of ``--size-mb`` MiB
   under ``.cache/bench/``. The job is wordcount with ``--map-tasks`` line-aligned
   splits, ``--reduce-tasks`` reduce tasks, ``--mappers`` mappers and ``--reducers``
   reducers, streaming shuffle, combiner on.
2. Runs the sequential oracle once (``kubemr run --sequential``); every run's output,
   sorted, must equal it line for line (a fast wrong answer is not a result).
3. Calibrates the slow-worker hook: a single-mapper job (``--calibrate-mb`` of the
   corpus, 8 map tasks) run plainly and with ``kubemr run --slow-worker mapper-0=10``,
   interleaved, ``--calibrate-repeat`` times; prints the ratio of the map phases.
4. Runs these scenarios, interleaved per repetition (the order rotates every
   repetition, so machine load hits them alike), each as a child process that runs the
   job with :class:`kubemr.launcher.Launcher` (what ``kubemr run`` does):

   - ``healthy``: no fault (speculation on, the default);
   - ``slow-spec``: ``mapper-0`` slowed 10x (the launcher's SIGSTOP/SIGCONT
     :class:`~kubemr.launcher.Throttle`) from the moment every worker has registered
     to the end of the job, speculation on. (Slowed from its start, as
     ``--slow-worker`` does, its start-up would take about 10 s, longer than the map
     phase: it would never take a task and the job would run without it.)
   - ``slow-nospec``: the same with ``faultTolerance.speculative: false``;
   - ``kill``: a quarter of the workers (``mapper-0`` and ``reducer-0`` of 4 + 4) get
     SIGKILL once half of the map tasks are done; the launcher replaces them (as the
     operator replaces pods) and the master reruns their work.

   Wall time is spawn to exit of the child; CPU time (user + system of the whole
   process tree) from ``os.wait4``; phase times, attempts and speculation counters from
   the job summary.
5. Prints medians, the ratios against ``healthy`` with the targets (at most 1.15x for
   ``slow-spec`` and ``kill``), the extra attempts speculation launched as a share of
   all attempts, the load average and the machine. ``--json FILE`` writes every run.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import wordcount  # bench/wordcount.py: the corpus and the child-process timing

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
TARGET = 1.15
SCENARIOS = ("healthy", "slow-spec", "slow-nospec", "kill")
TARGETS = {"slow-spec": TARGET, "kill": TARGET}
SLOW_FACTOR = 10.0


# --- the job ------------------------------------------------------------------------------


def manifest(
    corpus: Path,
    size: int,
    out: Path,
    args: argparse.Namespace,
    *,
    map_tasks: int,
    mappers: int,
    reducers: int,
    speculative: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "bench-faults"},
        "spec": {
            "app": {"builtin": "wordcount"},
            "input": {"paths": [str(corpus)], "splitSize": str(-(-size // map_tasks))},
            "output": {"path": str(out), "overwrite": True},
            "reduceTasks": args.reduce_tasks,
            "mapper": {"replicas": mappers},
            "reducer": {"replicas": reducers},
            "shuffle": {"mode": "streaming"},
            "faultTolerance": {
                "speculative": speculative,
                "heartbeatTimeout": args.heartbeat_timeout,
            },
        },
    }


def scenario_config(
    name: str, corpus: Path, size: int, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    out = work / f"out-{name}"
    doc = manifest(
        corpus,
        size,
        out,
        args,
        map_tasks=args.map_tasks,
        mappers=args.mappers,
        reducers=args.reducers,
        speculative=name != "slow-nospec",
    )
    config: dict[str, Any] = {"manifest": doc, "slow": {}, "kill": [], "kill_at": 0.5}
    if name.startswith("slow"):
        config["slow"] = {"mapper-0": SLOW_FACTOR}
    if name == "kill":
        config["kill"] = kill_slots(args.mappers, args.reducers)
    return config


def kill_slots(mappers: int, reducers: int) -> list[str]:
    """A quarter of the workers, a quarter of each role (at least one of each)."""
    return [f"mapper-{i}" for i in range(max(1, mappers // 4))] + [
        f"reducer-{i}" for i in range(max(1, reducers // 4))
    ]


# --- the child: one job through the launcher -----------------------------------------------


def child(config_path: Path, result_path: Path) -> None:
    from kubemr import plan, spec  # noqa: PLC0415
    from kubemr.config import Slowdown  # noqa: PLC0415
    from kubemr.launcher import Launcher, Throttle  # noqa: PLC0415

    config = json.loads(config_path.read_text(encoding="utf-8"))
    job = spec.parse_job(config["manifest"], str(config_path))
    job_plan = plan.plan_job(job, [ROOT])
    killed: list[dict[str, Any]] = []
    holder: list[Launcher] = []

    workers = job.spec.mapper.replicas + job.spec.reducer.replicas

    def strike(status: Any) -> None:
        if config["slow"] and not holder[0].throttles and status.workers >= workers:
            for slot in holder[0].slots:  # every worker has registered: slow one down
                name = f"{slot.role}-{slot.index}"
                if name in config["slow"]:
                    throttle = Throttle(slot, Slowdown(name, config["slow"][name]))
                    holder[0].throttles.append(throttle)
                    throttle.start()
        if killed or not config["kill"] or not status.maps_total:
            return
        if status.maps_done < config["kill_at"] * status.maps_total:
            return
        for slot in holder[0].slots:
            name = f"{slot.role}-{slot.index}"
            if name in config["kill"] and slot.process is not None:
                slot.process.signal(signal.SIGKILL)
                killed.append({"slot": name, "process": slot.process.name})
        killed.append({"maps_done": status.maps_done})

    launcher = Launcher(
        job_plan, search=[ROOT], keep_workdir=bool(config.get("keep_logs")), progress=strike
    )
    holder.append(launcher)
    try:
        run = launcher.run()
    finally:
        if config.get("keep_logs"):
            shutil.copytree(launcher.workdir / "logs", config["keep_logs"], dirs_exist_ok=True)
            shutil.rmtree(launcher.workdir, ignore_errors=True)
    result = {"summary": run.summary, "killed": killed}
    result_path.write_text(json.dumps(result), encoding="utf-8")


# --- measuring ------------------------------------------------------------------------------


def sorted_output(out: Path) -> list[bytes]:
    lines: list[bytes] = []
    for part in sorted(out.glob("part-*")):
        lines.extend(part.read_bytes().splitlines())
    return sorted(lines)


def check_output(what: str, out: Path, oracle: list[bytes]) -> None:
    got = sorted_output(out)
    if got != oracle:
        missing = sorted(set(oracle) - set(got))[:5]
        extra = sorted(set(got) - set(oracle))[:5]
        raise SystemExit(
            f"bench: {what}: output differs from the sequential oracle "
            f"({len(got)} vs {len(oracle)} lines; missing {missing}, unexpected {extra})"
        )


def run_oracle(
    corpus: Path, meta: dict[str, Any], work: Path, args: argparse.Namespace
) -> list[bytes]:
    """The sorted output of ``kubemr run --sequential``, cached next to the corpus (keyed
    by the corpus and the sources of the app and of the sequential runner)."""
    sources = [ROOT / "runtime/kubemr/apps/wordcount.py", ROOT / "runtime/kubemr/sequential.py"]
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for source in sources:
        key.update(source.read_bytes())
    cached = args.cache_dir / f"oracle-wordcount-{key.hexdigest()[:16]}.txt"
    if cached.exists():
        print(f"oracle: cached {cached.name}", flush=True)
        return cached.read_bytes().splitlines()
    out = work / "oracle"
    doc = manifest(corpus, int(meta["bytes"]), out, args, map_tasks=1, mappers=1, reducers=1)
    path = work / "oracle.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    log = work / "oracle.log"
    wall, code, _, _ = wordcount.timed_child(
        [*wordcount.kubemr_command(), "run", str(path), "--sequential"], log
    )
    if code != 0:
        wordcount.fail("the sequential oracle", code, log)
    print(f"oracle: kubemr run --sequential in {wall:.1f} s", flush=True)
    lines = sorted_output(out)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(b"\n".join(lines))
    tmp.replace(cached)
    return lines


def run_scenario(
    name: str, corpus: Path, size: int, work: Path, args: argparse.Namespace, oracle: list[bytes]
) -> dict[str, Any]:
    config = scenario_config(name, corpus, size, work, args)
    if args.keep_logs:
        config["keep_logs"] = str(args.keep_logs / f"{name}-{len(list(work.glob('*.log')))}")
    config_path = work / f"{name}.json"
    result_path = work / f"{name}.result.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    log = work / f"{name}.log"
    load_before = os.getloadavg()[0]
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(config_path)]
    wall, code, _, cpu = wordcount.timed_child([*argv, "--result", str(result_path)], log)
    if code != 0:
        wordcount.fail(f"scenario {name}", code, log)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    check_output(name, Path(config["manifest"]["spec"]["output"]["path"]), oracle)
    summary = result["summary"]
    speculation = summary["speculation"]
    return {
        "scenario": name,
        "wall": wall,
        "cpu": cpu,
        "job": summary["wallSeconds"],
        "map": summary["phaseSeconds"]["map"],
        "reduce": summary["phaseSeconds"]["reduce"],
        "attempts": speculation["attempts"],
        "attemptsByOutcome": summary["attempts"],
        "backups": sum(speculation["backups"].values()),
        "backupsWon": sum(speculation["backupsWon"].values()),
        "backupsByRule": speculation["backupsByRule"],
        "backupShare": speculation["backupShare"],
        "restarts": summary["workerRestarts"],
        "killed": result["killed"],
        "load": (load_before, os.getloadavg()[0]),
    }


def calibrate(
    corpus: Path, work: Path, args: argparse.Namespace, oracle_of: dict[str, list[bytes]]
) -> list[dict[str, Any]]:
    """Single-mapper job, plain and with ``--slow-worker mapper-0=10``, via the CLI."""
    small = work / "calibration.txt"
    with corpus.open("rb") as src:
        data = src.read(int(args.calibrate_mb * MIB))
    small.write_bytes(data[: data.rfind(b"\n") + 1])
    size = small.stat().st_size
    runs = []
    for rep in range(args.calibrate_repeat):
        for slowed in (rep % 2 == 1, rep % 2 == 0):
            out = work / "calibration-out"
            doc = manifest(small, size, out, args, map_tasks=8, mappers=1, reducers=1)
            path = work / "calibration.json"
            path.write_text(json.dumps(doc), encoding="utf-8")
            flags = ["--slow-worker", f"mapper-0={SLOW_FACTOR:g}"] if slowed else []
            log = work / "calibration.log"
            wall, code, _, cpu = wordcount.timed_child(
                [*wordcount.kubemr_command(), "run", str(path), "--quiet", *flags], log
            )
            if code != 0:
                wordcount.fail("calibration run", code, log)
            if "oracle" not in oracle_of:
                oracle_of["oracle"] = sorted_output(out)
            check_output("calibration", out, oracle_of["oracle"])
            summary = json.loads((out / "_summary.json").read_text(encoding="utf-8"))
            runs.append(
                {
                    "slowed": slowed,
                    "wall": wall,
                    "cpu": cpu,
                    "map": summary["phaseSeconds"]["map"],
                    "job": summary["wallSeconds"],
                }
            )
            print(
                f"  calibration {'slowed' if slowed else 'plain '} wall {wall:6.2f} s  "
                f"map phase {summary['phaseSeconds']['map']:6.2f} s",
                flush=True,
            )
    return runs


# --- report ---------------------------------------------------------------------------------


def med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def report(
    results: dict[str, list[dict[str, Any]]],
    calibration: list[dict[str, Any]],
    size: int,
    args: argparse.Namespace,
) -> str:
    n = len(results["healthy"])
    lines = [
        f"faults: wordcount over {size / MIB:.0f} MiB, {args.map_tasks} map tasks, "
        f"{args.reduce_tasks} reduce tasks, {args.mappers} mappers + {args.reducers} reducers, "
        f"heartbeatTimeout {args.heartbeat_timeout}; medians of {n} interleaved run(s)",
        "",
        f"{'scenario':<12} {'wall s':>7} {'/healthy':>8} {'CPU s':>7} {'map s':>6} "
        f"{'reduce s':>8} {'attempts':>8} {'backups':>7} {'won':>4} {'restarts':>8}  target",
    ]
    healthy = med(results["healthy"], "wall")
    ratios = {}
    present = [name for name in SCENARIOS if name in results]
    for name in present:
        runs = results[name]
        wall = med(runs, "wall")
        ratios[name] = wall / healthy
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target}: {'met' if ratios[name] <= target else 'MISSED'}"
        lines.append(
            f"{name:<12} {wall:>7.2f} {ratios[name]:>8.2f} {med(runs, 'cpu'):>7.2f} "
            f"{med(runs, 'map'):>6.2f} {med(runs, 'reduce'):>8.2f} {med(runs, 'attempts'):>8.0f} "
            f"{med(runs, 'backups'):>7.0f} {med(runs, 'backupsWon'):>4.0f} "
            f"{med(runs, 'restarts'):>8.0f}  {verdict}"
        )
    lines += [
        "",
        "ratio of every run against the healthy run of its repetition (load swings between",
        "repetitions, so the median of these paired ratios is shown too):",
    ]
    for name in present[1:]:
        per = [
            r["wall"] / h["wall"] for r, h in zip(results[name], results["healthy"], strict=True)
        ]
        target = TARGETS.get(name)
        paired = statistics.median(per)
        verdict = (
            f"; target <= {target}: {'met' if paired <= target else 'MISSED'}" if target else ""
        )
        lines.append(
            f"  {name:<12} {' '.join(f'{x:.2f}' for x in per)}  median {paired:.2f}{verdict}"
        )
    lines += ["", "speculation: backup attempts / all attempts (medians; runs' values):"]
    for name in present:
        runs = results[name]
        rules = collections.Counter()
        for r in runs:
            rules.update(r["backupsByRule"])
        shares = ", ".join(f"{r['backups']}/{r['attempts']}" for r in runs)
        lines.append(
            f"  {name:<12} {med(runs, 'backupShare'):.3f}  ({shares}; "
            f"chosen by rate {rules['rate']}, by elapsed time {rules['elapsed']})"
        )
    if calibration:
        plain = [r for r in calibration if not r["slowed"]]
        slowed = [r for r in calibration if r["slowed"]]
        lines += [
            "",
            f"slow-worker hook, single mapper, {args.calibrate_mb:g} MiB, 8 map tasks "
            f"(medians of {len(plain)}): map phase {med(plain, 'map'):.2f} s plain, "
            f"{med(slowed, 'map'):.2f} s at --slow-worker mapper-0={SLOW_FACTOR:g}: "
            f"{med(slowed, 'map') / med(plain, 'map'):.1f}x; job (master start to commit) "
            f"{med(plain, 'job'):.2f} s vs {med(slowed, 'job'):.2f} s",
        ]
    loads = [x for runs in results.values() for r in runs for x in r["load"]]
    lines += [
        "",
        f"load average (1 min) around the runs: min {min(loads):.2f}, max {max(loads):.2f}; "
        f"{os.cpu_count()} CPUs; {platform.machine()}, Python {platform.python_version()}",
        "outputs: every run == the sequential oracle (sorted lines, checked every run)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=256, help="corpus size, MiB")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (medians reported)")
    parser.add_argument("--map-tasks", type=int, default=32)
    parser.add_argument("--reduce-tasks", type=int, default=4)
    parser.add_argument("--mappers", type=int, default=4)
    parser.add_argument("--reducers", type=int, default=4)
    parser.add_argument("--heartbeat-timeout", default="10s", help="spec.faultTolerance")
    parser.add_argument("--calibrate-mb", type=float, default=16, help="0 to skip")
    parser.add_argument("--calibrate-repeat", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=wordcount.DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=wordcount.DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--keep-logs", type=Path, help="copy every run's process logs here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mb <= 0 or args.map_tasks < 1:
        parser.error("--repeat and --map-tasks must be >= 1 and --size-mb > 0")
    if args.mappers < 2:
        parser.error("--mappers must be >= 2 (one of them is slowed or killed)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.result)
        return
    corpus, meta = wordcount.build_corpus(args.data, int(args.size_mb * MIB), args.cache_dir)
    size = int(meta["bytes"])
    print(f"corpus: {corpus} ({size} bytes)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="faults-", dir=args.cache_dir))
    try:
        oracle = run_oracle(corpus, meta, work, args)
        calibration = calibrate(corpus, work, args, {}) if args.calibrate_mb > 0 else []
        scenarios = tuple(s for s in SCENARIOS if s in args.scenarios.split(","))
        results: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for rep in range(args.repeat):
            shift = rep % len(scenarios)
            for name in scenarios[shift:] + scenarios[:shift]:
                measured = run_scenario(name, corpus, size, work, args, oracle)
                results[name].append(measured)
                print(
                    f"  run {rep + 1}/{args.repeat} {name:<12} {measured['wall']:6.2f} s  "
                    f"map {measured['map']:5.2f} s  backups {measured['backups']} "
                    f"(won {measured['backupsWon']})  restarts {measured['restarts']}  "
                    f"load {measured['load'][0]:.2f}",
                    flush=True,
                )
        print()
        print(report(results, calibration, size, args))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "corpus_bytes": size,
                "args": {k: str(v) for k, v in vars(args).items()},
                "calibration": calibration,
                "runs": results,
            }
            args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
