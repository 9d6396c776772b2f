"""Benchmark: the master at the design seed's scale, and the paper's fault experiments,
by discrete-event simulation over the real master state (``bench/simulation.py``).

Run it with ``make bench-scale`` or::

    .venv/bin/python bench/scale.py [--maps 200000 --reduces 5000 --machines 2000]
                                    [--paper-maps 15000 --paper-reduces 4000
                                     --paper-machines 1746 --paper-kill 200] [--json FILE]

What it does, in one run:

1. **Seed scale**: simulates a job of ``--maps`` map tasks, ``--reduces`` reduce tasks on
   ``--machines`` machines (one mapper and one reducer process each) and prints the
   wall time the scheduler took, assignments per second of scheduler time, the growth of
   the process's peak RSS over the run (an upper bound of the master state: it also
   holds the simulated workers and events), the journal's records and bytes, the
   ``/status`` report's size and build time, and the time to recover from the journal
   (read, replay, restore into a new scheduler). The location state (each map output's
   totals and one running sum per reduce partition: O(M + R)) is also measured apart on
   a few thousand real map outputs (see the docstring of :func:`location_state`).
2. **The paper's sort** (OSDI 2004, section 5.3-5.4): ``--paper-maps`` x
   ``--paper-reduces`` on ``--paper-machines`` machines, a few slow machines, in three
   scenarios, each with the same seed: ``normal``, ``no-backups`` (speculation off) and
   ``kill`` (``--paper-kill`` machines' workers killed when half the maps are done, and
   replaced). Prints the simulated completion times and the ratios against ``normal``
   beside the paper's (+44 %, +5 %).
3. **kubemr plan** for the seed's 12.8 TB on 2,000 workers.

Every run's job must succeed, or the benchmark fails. No timing figure depends on the
machine's load but the wall and scheduler times, which do: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from kubemr import journal as journals
from kubemr import sizing
from kubemr.attempts import Kind
from kubemr.scheduler import Scheduler
from kubemr.splits import Split
from simulation import Figures, Shape, Simulation, finished, sort_shaped

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
PAPER = {"no-backups": 1283 / 891, "kill": 933 / 891}
"""Completion time ratios the paper reports against its normal sort (891 s)."""


def rss() -> int:
    """Peak resident set size of this process so far, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def location_state(reduces: int, maps: int = 1000, seed: int = 1) -> dict[str, float]:
    """Bytes of the scheduler's location state per map output and per reduce partition,
    with sort-shaped sizes (every partition of a map output holds about ``64 MiB / R``
    bytes in ``100``-byte records).

    Per map output: tracemalloc over a real scheduler of ``maps`` and then ``2 * maps``
    map tasks and ``reduces`` reduce tasks taking every map output (each reported with
    its R partition sizes, as a mapper reports them); the difference is the cost of
    ``maps`` more outputs (each output's record, its attempt, the indexes). Per reduce
    partition: the running sums' lists and integers, with ``sys.getsizeof``.
    """
    held = []
    partitions = sort_shaped(reduces, random.Random(seed))  # reported, not kept
    sums = 0
    for count in (maps, 2 * maps):
        splits = [journals_split(i) for i in range(count)]
        scheduler = Scheduler(
            splits, reduces, barrier=False, max_attempts=4, heartbeat_timeout=10.0
        )
        worker = scheduler.register("m", Kind.MAP, "h:1", 0.0)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            assignment = scheduler.assign(worker, 0.0)
            assert assignment is not None
            scheduler.map_succeeded(assignment.attempt, partitions, 1.0)
        held.append(tracemalloc.get_traced_memory()[0] - before)
        tracemalloc.stop()
        lists = (scheduler.sizes.records, scheduler.sizes.bytes)
        sums = sum(sys.getsizeof(v) for v in lists) + sum(
            sys.getsizeof(n) for v in lists for n in v
        )
        del scheduler, splits
    return {
        "memory_per_map_output": (held[1] - held[0]) / maps,
        "memory_per_reduce": sums / max(reduces, 1),
    }


def journal_sync_rate(work: Path, records: int = 2000, writers: int = 64) -> dict[str, float]:
    """Records per second the real journal writer makes durable on the disk under
    ``work``: one at a time (``append``: a write and an fsync per record, as the master
    did before group commit), and with ``writers`` requests at once, each adding a record
    and awaiting its durability, as the master's concurrent handlers do (group commit:
    the records added while an fsync is in flight share the next one)."""
    work.mkdir(parents=True, exist_ok=True)
    journal = journals.FileJournal.create(str(work / "sequential.jsonl"))
    started = time.perf_counter()
    for index in range(records):
        journal.append({"event": "assigned", "attempt": f"m{index}.a1"})
    sequential = time.perf_counter() - started
    journal.close()
    grouped = journals.FileJournal.create(str(work / "grouped.jsonl"))
    numbers = iter(range(records))

    async def writer() -> None:
        for index in numbers:
            await grouped.durable(grouped.add({"event": "assigned", "attempt": f"m{index}.a1"}))

    async def run() -> float:
        begun = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        return time.perf_counter() - begun

    seconds = asyncio.run(run())
    grouped.close()
    assert grouped.records == records
    return {
        "records": records,
        "seconds": sequential,
        "per_second": records / sequential,
        "writers": writers,
        "grouped_seconds": seconds,
        "grouped_per_second": records / seconds,
        "grouped_syncs": grouped.syncs,
    }


def journals_split(index: int) -> Split:
    return Split("/virtual/input", index * 64 * MIB, (index + 1) * 64 * MIB)


def recover(path: Path, shape: Shape) -> dict[str, float]:
    """Time (CPU) a master restart's journal recovery: read, replay, restore; and one
    ``map_outputs`` call listing every output (what a reducer's first AwaitMapOutputs
    after the map phase costs the scheduler)."""
    started = time.process_time()
    contents = journals.read(path)
    read = time.process_time() - started
    replayed = journals.replay(contents.records[1:])
    replay = time.process_time() - started - read
    scheduler = Scheduler(
        [journals_split(i) for i in range(shape.maps)],
        shape.reduces,
        barrier=shape.barrier,
        max_attempts=shape.max_attempts,
        heartbeat_timeout=shape.heartbeat_timeout,
    )
    scheduler.restore(replayed.recovery, 0.0)
    total = time.process_time() - started
    started = time.process_time()
    refs, _ = scheduler.map_outputs(set())
    outputs = time.process_time() - started
    return {
        "records": len(contents.records),
        "read_seconds": read,
        "replay_seconds": replay,
        "total_seconds": total,
        "map_outputs_seconds": outputs,
        "map_outputs": len(refs),
        "recovered_maps": len(replayed.recovery.map_outputs),
        "recovered_reduces": len(replayed.recovery.committed),
        "sized_maps": scheduler.sizes.counted,
    }


def simulate(shape: Shape, work: Path, verbose: bool = False) -> tuple[Figures, int]:
    work.mkdir(parents=True, exist_ok=True)
    gc.collect()
    before = rss()
    figures = Simulation(shape, work, verbose=verbose).run()
    grown = rss() - before
    if not finished(figures):
        sys.exit(f"simulated job {shape} did not succeed: {figures.phase}")
    return figures, grown


def seed_scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    shape = Shape(
        maps=args.maps,
        reduces=args.reduces,
        machines=args.machines,
        map_seconds=args.map_seconds,
        seed=args.seed,
    )
    figures, grown = simulate(shape, work / "seed", verbose=args.verbose)
    recovery = recover(work / "seed" / "journal.jsonl", shape)
    location = location_state(args.reduces)
    sync = journal_sync_rate(work / "sync")
    return {
        "shape": asdict(shape),
        "figures": {
            **asdict(figures),
            "assignments_per_second": figures.assignments_per_second,
            "cpu_share": figures.cpu_share,
        },
        "rss_growth_bytes": grown,
        "recovery": recovery,
        "location": location,
        "journal_sync": sync,
        "location_bytes": location["memory_per_map_output"] * args.maps
        + location["memory_per_reduce"] * args.reduces,
    }


def paper(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    base = Shape(
        maps=args.paper_maps,
        reduces=args.paper_reduces,
        machines=args.paper_machines,
        map_seconds=args.paper_map_seconds,
        fetch_seconds=args.paper_fetch_seconds,
        reduce_seconds=args.paper_reduce_seconds,
        slow_share=args.slow_share,
        slow_factor=args.slow_factor,
        seed=args.seed,
    )
    scenarios = {
        "normal": base,
        "no-backups": replace(base, speculative=False),
        "kill": replace(base, kill=args.paper_kill),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for repeat in range(args.repeat):
        for name, scenario in scenarios.items():
            shape = replace(scenario, seed=args.seed + repeat)
            figures, _ = simulate(shape, work / f"paper-{name}-{repeat}")
            runs[name].append(asdict(figures))
    return {"shape": asdict(base), "runs": runs}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(results: dict[str, Any]) -> str:
    lines = []
    seed = results.get("seed")
    if seed is not None:
        shape, fig = seed["shape"], seed["figures"]
        share = fig["cpu_share"]
        rec = seed["recovery"]
        sync = seed["journal_sync"]
        lines += [
            f"seed scale: M = {shape['maps']:,}, R = {shape['reduces']:,}, "
            f"W = {shape['machines']:,} machines (a mapper and a reducer each)",
            f"  simulated job: {fig['phase']} in {fig['simulated_seconds']:,.0f} s simulated "
            f"(map phase {fig['map_phase_seconds']:,.0f} s), {fig['wall_seconds']:.1f} s wall, "
            f"{fig['cpu_seconds']:.1f} s CPU",
            f"  scheduler: {fig['assignments']:,} assignments ({fig['backups']:,} backups): "
            f"{fig['assignments_per_second']:,.0f} assignments/s of assign time "
            f"(target >= 10,000); {fig['scheduler_seconds'] * share:.1f} s CPU in the "
            f"scheduler in all (wall times x the run's CPU share {share:.2f}):",
            *(
                f"    {name:<17} {fig['calls'].get(name, 0):>11,} calls "
                f"{fig['seconds'][name] * share:>8.2f} s "
                f"{fig['seconds'][name] * share / max(fig['calls'].get(name, 0), 1) * 1e6:>8.1f}"
                " us/call"
                for name in sorted(fig["seconds"], key=lambda n: -fig["seconds"][n])
            ),
            f"  master state: peak RSS grew {seed['rss_growth_bytes'] / MIB:,.0f} MiB over the "
            "run (scheduling state + journal buffers + the simulated workers; target < 1 GiB)",
            f"  location state (map output totals + per-partition sums, O(M + R), measured "
            f"on real map outputs): {seed['location']['memory_per_map_output']:.0f} B per map "
            f"output, {seed['location']['memory_per_reduce']:.0f} B per reduce partition -> "
            f"{seed['location_bytes'] / MIB:,.0f} MiB at M, R (in the RSS growth above)",
            f"  journal: {fig['journal_records']:,} records ({fig['checkpoints']:,} partition "
            f"size checkpoints, {fig['checkpoint_bytes'] / MIB:,.1f} MiB), "
            f"{fig['journal_bytes'] / MIB:,.1f} MiB, written in {fig['journal_seconds']:.2f} s "
            "(no fsync)",
            f"  journal, real writer on this disk: one record per fsync "
            f"{sync['per_second']:,.0f} records/s; group commit with {sync['writers']} "
            f"concurrent requests {sync['grouped_per_second']:,.0f} records/s "
            f"({sync['records'] / sync['grouped_syncs']:.1f} records per fsync, "
            f"{sync['grouped_per_second'] / sync['per_second']:.1f}x)",
            f"  recovery from it: {rec['total_seconds']:.2f} s CPU (read "
            f"{rec['read_seconds']:.2f}, replay {rec['replay_seconds']:.2f}; "
            f"{rec['recovered_maps']:,} map outputs, {rec['recovered_reduces']:,} committed "
            f"reduces, partition sizes over {rec['sized_maps']:,} map outputs); then "
            f"map_outputs of all {rec['map_outputs']:,}: "
            f"{rec['map_outputs_seconds'] * 1000:.0f} ms",
            f"  /status report: {fig['status_bytes']:,} bytes, built in "
            f"{fig['status_seconds'] * 1000:.1f} ms",
        ]
    sort = results.get("paper")
    if sort is not None:
        shape, runs = sort["shape"], sort["runs"]
        normal = median(runs["normal"], "simulated_seconds")
        lines += [
            f"paper's sort: M = {shape['maps']:,}, R = {shape['reduces']:,}, "
            f"{shape['machines']:,} machines, {shape['slow_share']:.1%} slow x"
            f"{shape['slow_factor']:g}; median of {len(runs['normal'])} seeds",
            f"  {'scenario':<11} {'completion':>11} {'ratio':>6} {'paper':>6} "
            f"{'map phase':>10} {'backups':>8} {'wall':>6}",
        ]
        for name, scenario in runs.items():
            seconds = median(scenario, "simulated_seconds")
            paper_ratio = f"{PAPER[name]:.2f}" if name in PAPER else "1.00"
            lines.append(
                f"  {name:<11} {seconds:>10,.0f}s {seconds / normal:>6.2f} {paper_ratio:>6} "
                f"{median(scenario, 'map_phase_seconds'):>9,.0f}s "
                f"{median(scenario, 'backups'):>8,.0f} {median(scenario, 'wall_seconds'):>5.1f}s"
            )
    plan = results.get("plan")
    if plan is not None:
        lines += ["kubemr plan --input-size 12.8T --workers 2000:", *plan.splitlines()]
    load = os.getloadavg()
    lines.append(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (other work shares it)"
    )
    return "\n".join(lines)


def plan_figures() -> str:
    """What ``kubemr plan --input-size 12.8T --workers 2000`` prints."""
    return sizing.render(sizing.propose([sizing.parse_size("12.8T")], 2000))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=200_000)
    parser.add_argument("--reduces", type=int, default=5_000)
    parser.add_argument("--machines", type=int, default=2_000)
    parser.add_argument("--map-seconds", type=float, default=20.0)
    parser.add_argument("--paper-maps", type=int, default=15_000)
    parser.add_argument("--paper-reduces", type=int, default=4_000)
    parser.add_argument("--paper-machines", type=int, default=1_746)
    parser.add_argument("--paper-kill", type=int, default=200)
    parser.add_argument("--paper-map-seconds", type=float, default=20.0)
    parser.add_argument("--paper-fetch-seconds", type=float, default=60.0)
    parser.add_argument("--paper-reduce-seconds", type=float, default=150.0)
    parser.add_argument("--slow-share", type=float, default=0.005)
    parser.add_argument("--slow-factor", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=1, help="seeds per paper scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[], choices=("seed", "paper", "plan"))
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--verbose", action="store_true", help="seed run: progress on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=args.cache_dir))
    results: dict[str, Any] = {}
    try:
        if "seed" not in args.skip:
            results["seed"] = seed_scale(args, work)
        if "paper" not in args.skip:
            results["paper"] = paper(args, work)
        if "plan" not in args.skip:
            results["plan"] = plan_figures()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
