"""Chaos cells: workers or the master killed or stopped at chosen moments; every cell
ends with output identical to the sequential oracle.

The launcher runs in this process; its progress callback (called with the master's
status every ~50 ms) is where each cell decides, by polling the job's state, when to
strike. Kills are SIGKILL to a process group. The launcher replaces a killed worker and
the master reruns its tasks (heartbeat timeout 1s); it restarts a killed master, which
resumes the job from its journal while the workers register with it again.

A cell strikes only once the state that makes its fault meaningful is observed, never
after a guessed delay: a worker is hit once it holds work (a mapper announces its first
map call, see apps/crash.py; finished map output and reduce attempts are directories in
its work dir), and a stopped worker is resumed once the master has declared it dead.
On a loaded machine a cell then takes longer, but checks the same thing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubemr import plan, spec
from kubemr.config import Slowdown
from kubemr.launcher import Launcher, LocalRun, Process
from kubemr.proto import mapreduce_pb2 as pb
from roles import journal_records

from testjobs import APPS, ROOT, manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]
OnStatus = Callable[[Launcher, pb.JobStatus], None]


def chaos_job(
    tmp_path: Path,
    mappers: int = 3,
    reducers: int = 2,
    delay: float = 0.004,
    heartbeat: str = "1s",
    **spec: Any,
) -> dict[str, Any]:
    """Word count over 30 map tasks of 50 lines, each line taking ``delay`` seconds.
    Mappers announce their first map call in ``tmp_path/mapping`` (:func:`mapping`)."""
    (tmp_path / "mapping").mkdir(exist_ok=True)
    args = {"delay": str(delay), "announce": str(tmp_path / "mapping")}
    return manifest(
        "chaos",
        {"module": f"{APPS / 'crash.py'}:Crash", "args": args},
        word_input(tmp_path),
        tmp_path / "out",
        input={"splitSize": "2Ki"},
        reduceTasks=3,
        mapper={"replicas": mappers},
        reducer={"replicas": reducers},
        faultTolerance={"heartbeatTimeout": heartbeat},
        **spec,
    )


def run_chaos(
    doc: dict[str, Any],
    on_status: OnStatus,
    on_start: Callable[[Process], None] | None = None,
    slow_workers: list[Slowdown] | None = None,
    metrics: bool = False,
) -> LocalRun:
    job = spec.parse_job(doc, "chaos test")
    job_plan = plan.plan_job(job, [ROOT])
    holder: list[Launcher] = []
    launcher = Launcher(
        job_plan,
        search=[ROOT],
        progress=lambda status: on_status(holder[0], status),
        on_worker_start=on_start,
        slow_workers=slow_workers or [],
        metrics=metrics,
    )
    holder.append(launcher)
    return launcher.run()


def current(launcher: Launcher, role: str, index: int) -> Process:
    """The live process filling a worker slot (it may be a replacement)."""
    slot = next(s for s in launcher.slots if s.role == role and s.index == index)
    assert slot.process is not None
    return slot.process


def mapping(doc: dict[str, Any], process: Process) -> bool:
    """``process`` (a mapper) has made a map call: it holds a map task or has done one."""
    return (Path(doc["spec"]["app"]["args"]["announce"]) / process.name).exists()


def has_map_output(launcher: Launcher, process: Process) -> bool:
    """``process`` (a mapper) holds the output of a finished map attempt on its disk."""
    return any((launcher.workdir / process.name / "map-output").glob("*"))


def has_reduce_attempt(launcher: Launcher, process: Process) -> bool:
    """``process`` (a reducer) has started a reduce attempt (its scratch directory)."""
    return any((launcher.workdir / process.name / "reduce").glob("*"))


def mappers(launcher: Launcher) -> list[Process]:
    return [current(launcher, "mapper", s.index) for s in launcher.slots if s.role == "mapper"]


def check(doc: dict[str, Any], run: LocalRun, oracle: Oracle) -> None:
    assert run.summary["phase"] == "Succeeded"
    assert sorted_output(Path(doc["spec"]["output"]["path"])) == oracle(doc)


def test_kill_a_mapper_during_map(tmp_path: Path, oracle: Oracle) -> None:
    doc = chaos_job(tmp_path)
    killed: list[str] = []

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if killed or not 3 <= status.maps_done < status.maps_total - 3:
            return
        holders = [p for p in mappers(launcher) if has_map_output(launcher, p)]
        if holders:  # its finished outputs die with it
            holders[0].signal(signal.SIGKILL)
            killed.append(holders[0].name)

    run = run_chaos(doc, strike)
    assert len(killed) == 1
    assert run.summary["workerRestarts"] >= 1
    assert run.summary["attempts"].get("map_lost", 0) >= 1
    check(doc, run, oracle)


def test_kill_a_mapper_after_the_map_phase_before_reducers_fetch(
    tmp_path: Path, oracle: Oracle
) -> None:
    """Barrier mode; reducers are held stopped (before they even register) until every
    map is done, then a mapper holding outputs dies and the reducers are let go: they
    find its outputs unreachable, report it, and the master reruns those maps."""
    doc = chaos_job(tmp_path, shuffle={"mode": "barrier"})
    held: list[Process] = []
    killed: list[str] = []

    def hold_reducers(process: Process) -> None:
        if process.role == "reducer" and not killed:
            process.signal(signal.SIGSTOP)
            held.append(process)

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if not killed and status.maps_total and status.maps_done == status.maps_total:
            victim = next(p for p in mappers(launcher) if has_map_output(launcher, p))
            victim.signal(signal.SIGKILL)
            killed.append(victim.name)
            for process in held:
                process.signal(signal.SIGCONT)

    run = run_chaos(doc, strike, hold_reducers)
    assert len(killed) == 1 and len(held) == 2
    assert run.summary["attempts"].get("map_lost", 0) >= 1
    check(doc, run, oracle)


def test_kill_a_reducer_mid_fetch(tmp_path: Path, oracle: Oracle) -> None:
    """Streaming mode: reducers fetch while maps still run; one is killed then."""
    doc = chaos_job(tmp_path)
    killed: list[str] = []

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if killed or not status.maps_done >= status.maps_total // 3 > 0:
            return
        victim = current(launcher, "reducer", 0)
        if has_reduce_attempt(launcher, victim):  # it fetches for a reduce attempt
            victim.signal(signal.SIGKILL)
            killed.append(victim.name)

    run = run_chaos(doc, strike)
    assert killed == ["reducer-0"]
    assert run.summary["attempts"].get("reduce_lost", 0) >= 1
    check(doc, run, oracle)


def test_sigstop_a_mapper_past_the_heartbeat(tmp_path: Path, oracle: Oracle) -> None:
    """A straggler: stopped while it maps (heartbeat timeout 1s), resumed once the master
    has declared it dead; its late reports are discarded and it re-registers."""
    doc = chaos_job(tmp_path, delay=0.008)
    stopped: dict[str, Any] = {}
    everyone = doc["spec"]["mapper"]["replicas"] + doc["spec"]["reducer"]["replicas"]

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        victim = current(launcher, "mapper", 1)
        # Stopped once every worker registered (so the count can only fall: a death).
        ready = status.workers == everyone and mapping(doc, victim)
        if not stopped and ready and status.maps_done < status.maps_total:
            victim.signal(signal.SIGSTOP)
            stopped.update(process=victim, workers=status.workers)
        elif stopped and "resumed" not in stopped and status.workers < stopped["workers"]:
            stopped["process"].signal(signal.SIGCONT)  # declared dead: fault complete
            stopped["resumed"] = status.phase

    run = run_chaos(doc, strike)
    assert "resumed" in stopped
    assert run.summary["workerRestarts"] == 0
    assert run.summary["attempts"].get("map_lost", 0) >= 1
    check(doc, run, oracle)


def test_kill_a_quarter_of_the_workers_at_once(tmp_path: Path, oracle: Oracle) -> None:
    doc = chaos_job(tmp_path, mappers=4, reducers=4)
    killed: list[str] = []

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if not killed and status.maps_done >= status.maps_total // 2 > 0:
            victims = [current(launcher, "mapper", 0), current(launcher, "reducer", 0)]
            for victim in victims:
                victim.signal(signal.SIGKILL)
            killed.extend(v.name for v in victims)

    run = run_chaos(doc, strike)
    assert killed == ["mapper-0", "reducer-0"]
    assert run.summary["workerRestarts"] >= 2
    check(doc, run, oracle)


def run_straggler(tmp_path: Path, oracle: Oracle, slowdown: Slowdown) -> LocalRun:
    """Six map tasks of ~2 s each at full speed (sleeps mostly, so that load changes them
    little); the straggler slot is slowed by the launcher's duty cycle, start-up
    included, and the two other mappers are held until it has made its first map call,
    so it holds one of the six tasks. The fast mappers run the 5 others in 3 rounds and
    ask for more while the straggler's task is far from done: its splits are read in
    4 KiB blocks, so it reports progress at a fraction of their rate, and one of them
    gets a backup. (With many short tasks, the straggler finished its task about when
    the others ran out of work, and whether a backup was due was a race.)"""
    doc = chaos_job(tmp_path, heartbeat="3s", delay=0.0013)
    (tmp_path / "words").mkdir()
    paths = word_input(tmp_path / "words", files=1, lines=9000)  # 6 map tasks
    doc["spec"]["input"] = {"paths": paths, "splitSize": "60Ki"}
    held: list[Process] = []
    released: list[bool] = []

    def hold_fast_mappers(process: Process) -> None:
        if process.role == "mapper" and process.name != slowdown.slot and not released:
            process.signal(signal.SIGSTOP)
            held.append(process)

    def release(launcher: Launcher, status: pb.JobStatus) -> None:
        straggler = next(p for p in mappers(launcher) if p.name == slowdown.slot)
        if not released and mapping(doc, straggler):
            for process in held:
                process.signal(signal.SIGCONT)
            released.append(True)

    run = run_chaos(doc, release, hold_fast_mappers, [slowdown])
    assert run.summary["mapTasks"] == 6
    assert run.summary["slowWorkers"] == {slowdown.slot: slowdown.factor}
    check(doc, run, oracle)
    return run


def test_a_mapper_stopped_half_a_second_at_a_time_is_backed_up_not_declared_dead(
    tmp_path: Path, oracle: Oracle
) -> None:
    """A straggler that stays alive in long pauses: mapper-2 is stopped 0.5 s at a time
    and runs 50 ms in between (an 11x slowdown; heartbeat timeout 3 s, so five chances
    per timeout to send one). It is backed up like any slow task, and its pauses never
    cost it its life: no worker restarts, no map attempt lost."""
    run = run_straggler(tmp_path, oracle, Slowdown("mapper-2", 11, period=0.55))
    assert run.summary["backupAttempts"]["map"] >= 1, run.summary["attempts"]
    assert run.summary["workerRestarts"] == 0
    assert run.summary["attempts"].get("map_lost", 0) == 0, run.summary["attempts"]


def test_a_mapper_slowed_ten_times_is_backed_up_and_the_backup_wins(
    tmp_path: Path, oracle: Oracle
) -> None:
    """mapper-0 runs 10x slower for real (the launcher stops it 90 ms of every 100 ms):
    one of the fast mappers gets a backup of its task, which commits first; the slow
    original is discarded."""
    summary = run_straggler(tmp_path, oracle, Slowdown("mapper-0", 10)).summary
    speculation = summary["speculation"]
    assert speculation["backups"]["map"] >= 1, summary["attempts"]
    assert speculation["backupsWon"]["map"] >= 1, summary["attempts"]
    assert summary["attempts"].get("map_discarded", 0) >= 1
    assert summary["backupAttempts"] == speculation["backups"]
    assert speculation["backupShare"] > 0


def test_kill_a_reducer_while_it_writes_its_output(tmp_path: Path, oracle: Oracle) -> None:
    """One reducer, slowed to ~1s per reduce task; it is killed as soon as an attempt's
    temporary part file exists (before the master commits it). Its replacement reruns
    the task; the dead attempt's temporary output is never committed."""
    doc = chaos_job(tmp_path, reducers=1)
    doc["spec"]["app"]["args"]["reduce_delay"] = "0.015"
    temporary = Path(doc["spec"]["output"]["path"]) / "_temporary"
    killed: list[str] = []

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if not killed and any(temporary.glob("*/part-*")):
            victim = current(launcher, "reducer", 0)
            victim.signal(signal.SIGKILL)
            killed.append(victim.name)

    run = run_chaos(doc, strike)
    assert killed == ["reducer-0"]
    assert run.summary["attempts"].get("reduce_lost", 0) >= 1
    out = Path(doc["spec"]["output"]["path"])
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-{i:05d}" for i in range(3)]
    assert not temporary.exists()
    check(doc, run, oracle)


def test_kill_the_master_mid_map(tmp_path: Path, oracle: Oracle) -> None:
    """The master is killed once k of the 30 maps are in its journal; the launcher
    restarts it on the same port and it resumes from its journal. Every mapper is alive
    and registers again, so no journaled map runs again. (The kill is decided from the
    journal file, not the status: a map is counted done there before its record is
    written. Heartbeat timeout 10s: the window in which the new master waits for mappers
    to claim their outputs, wide enough for a loaded machine.)"""
    doc = chaos_job(tmp_path, heartbeat="10s")
    output = Path(doc["spec"]["output"]["path"])
    killed: dict[str, Any] = {}

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if killed:
            return
        journaled = [r for r in journal_records(output) if r.get("event") == "map_done"]
        if 3 <= len(journaled) < status.maps_total - 6:
            assert launcher.master is not None
            killed.update(launcher=launcher, name=launcher.master.name, maps=len(journaled))
            launcher.master.signal(signal.SIGKILL)

    run = run_chaos(doc, strike, metrics=True)
    assert killed["name"] == "master"
    assert killed["launcher"].master_restarts == 1 and run.summary["masterRestarts"] == 1
    restarted = run.summary["metrics"]["master-r1"]  # the killed master wrote no snapshot
    assert restarted["kubemr_master_restarts"][0]["value"] == 1.0
    recovered_maps = [
        row["value"]
        for row in restarted["kubemr_task_attempts"]
        if row["labels"] == {"role": "master", "phase": "map", "outcome": "recovered"}
    ]
    assert recovered_maps == [run.summary["recovered"]["maps"]]
    assert run.summary["workerRestarts"] == 0
    recovered, attempts = run.summary["recovered"], run.summary["attempts"]
    assert recovered["maps"] >= killed["maps"], attempts
    assert attempts.get("map_lost", 0) == 0, attempts
    assert attempts["map_succeeded"] + recovered["maps"] == run.summary["mapTasks"], attempts
    check(doc, run, oracle)


def test_kill_the_master_mid_reduce(tmp_path: Path, oracle: Oracle) -> None:
    """One reducer, slowed to ~1s per reduce task; the master is killed once some but not
    all reduce tasks are committed. The restarted master keeps the committed part files
    (not rewritten: same inode, same mtime), reuses every map output, and runs only the
    reduce tasks that were not committed. (Heartbeat timeout 10s: the mappers' window to
    claim their outputs from the new master, wide enough for a loaded machine.)"""
    doc = chaos_job(tmp_path, reducers=1, heartbeat="10s")
    doc["spec"]["app"]["args"]["reduce_delay"] = "0.015"
    out = Path(doc["spec"]["output"]["path"])
    killed: dict[str, Any] = {}

    def identity(part: Path) -> tuple[int, int]:
        stat = os.stat(part)
        return stat.st_ino, stat.st_mtime_ns

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if not killed and 0 < status.reduces_done < status.reduces_total:
            assert launcher.master is not None
            parts = {p.name: identity(p) for p in out.glob("part-*")}
            killed.update(launcher=launcher, parts=parts, reduces=status.reduces_done)
            launcher.master.signal(signal.SIGKILL)

    run = run_chaos(doc, strike)
    assert killed["launcher"].master_restarts == 1 and run.summary["masterRestarts"] == 1
    parts = killed["parts"]
    assert len(parts) >= killed["reduces"] >= 1
    assert {name: identity(out / name) for name in parts} == parts, "a committed part changed"
    recovered, attempts = run.summary["recovered"], run.summary["attempts"]
    assert recovered["reduces"] >= len(parts), attempts
    assert attempts["reduce_succeeded"] == 3 - recovered["reduces"], attempts
    assert recovered["maps"] == run.summary["mapTasks"], attempts
    check(doc, run, oracle)


def test_corrupt_map_output_is_refetched_from_a_rerun(tmp_path: Path, oracle: Oracle) -> None:
    """A mapper's finished runs turn to garbage on its disk: its shuffle server refuses
    to stream bytes that are not frames (the stream ends with an error, nothing corrupt
    reaches a reducer), the reducers report those outputs, the master re-runs those
    maps, and the job ends with the oracle's output."""
    doc = chaos_job(tmp_path, shuffle={"mode": "barrier"})
    corrupted: list[Path] = []

    def on_status(launcher: Launcher, status: pb.JobStatus) -> None:
        if corrupted or status.maps_done < 10:
            return
        for run in sorted(launcher.workdir.glob("mapper-*/map-output/*/*.run")):
            size = run.stat().st_size
            if size:
                run.write_bytes(b"\xff" * size)  # a frame header no decoder accepts
                corrupted.append(run)

    result = run_chaos(doc, on_status)
    assert corrupted, "some finished map output was corrupted"
    assert sorted_output(tmp_path / "out") == oracle(doc)
    assert result.summary["attempts"].get("map_lost", 0) >= 1, result.summary["attempts"]
