"""A discrete-event simulation of a kubemr job that drives the REAL master state.

Nothing here decides anything about tasks: :class:`kubemr.scheduler.Scheduler` (inside
the master's real :class:`kubemr.master.JobState`) makes every assignment, backup,
loss and retry decision, exactly as the master's gRPC handlers call it, with the
simulated clock as ``now``. What is simulated is the world around the master: worker
processes (one mapper and one reducer per machine, as the operator runs them), task
durations drawn from a seeded distribution, slow machines (the paper's stragglers),
workers killed and replaced (the paper's failure experiment), heartbeats and progress
reports. The journal is the real :class:`kubemr.journal.FileJournal`, written with the
records the master writes (``assigned``, ``map_done``, ``partition_sizes``,
``committing``, ``committed``).

The worker model, per event:

- an idle worker asks for a task (``Scheduler.assign``) when it becomes idle, and again
  on every heartbeat tick while it gets none (a real worker long-polls RequestTask);
- a map attempt runs ``map_seconds`` (lognormal, times its machine's slowness), reports
  progress linearly on every tick, then reports its output (``JobState.map_output``:
  the scheduler's ``map_succeeded`` and the journal records, as the master's handler);
- a reduce attempt fetches: its fetch ends ``fetch_seconds`` after it started, but not
  before every map output exists plus ``fetch_tail_seconds`` (the last outputs' transfer);
  a map output lost while it still fetches holds it until the map phase is over again.
  Then it sorts and reduces for ``reduce_seconds`` and commits (``may_commit`` and
  ``reduce_committed``, journaled as the master does). Progress: the fetch counts
  ``FETCH_SHARE`` of it, as the real reducer reports;
- a killed worker stops heartbeating (the scheduler declares it dead after the heartbeat
  timeout, via ``expire``); its replacement registers ``restart_seconds`` later under a
  new name and address (a new pod), with an empty disk.

Pure Python, no I/O but the journal file; every random draw comes from one seeded
``random.Random``, so a run is reproducible.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubemr import journal as journals
from kubemr import spec as specs
from kubemr.attempts import Assignment, Kind, Phase, State, heartbeat_interval
from kubemr.fetches import FETCH_SHARE  # as the real reducer reports
from kubemr.master import JobState
from kubemr.outputdir import OutputDir
from kubemr.partitionsizes import CHECKPOINT, OutputSizes
from kubemr.plan import JobPlan
from kubemr.splits import Split

SPARSE = 5
"""Ticks between heartbeats of a role while its phase is not at its end."""


@dataclass(frozen=True)
class Shape:
    """The simulated job: its size and its tasks' durations (seconds of simulated time)."""

    maps: int
    reduces: int
    machines: int
    """Machines; each runs one mapper and one reducer process."""
    map_seconds: float = 20.0
    """Median map attempt duration on a healthy machine."""
    fetch_seconds: float = 40.0
    """A reduce attempt's fetch when every map output already exists."""
    fetch_tail_seconds: float = 15.0
    """A fetch's end after the last map output appears (its transfer)."""
    reduce_seconds: float = 120.0
    """Median sort + reduce + write of a reduce attempt, after its fetch."""
    sigma: float = 0.2
    """Spread of every duration: a lognormal's sigma around the median."""
    slow_share: float = 0.0
    """Share of machines that are slow (a bad disk, a busy neighbour)."""
    slow_factor: float = 1.0
    """How many times longer a slow machine takes for any task."""
    speculative: bool = True
    """``faultTolerance.speculative``."""
    barrier: bool = False
    """``shuffle.mode: barrier`` (reduces start after the last map)."""
    heartbeat_timeout: float = 10.0
    """``faultTolerance.heartbeatTimeout``."""
    max_attempts: int = 4
    """``faultTolerance.maxTaskAttempts``."""
    kill: int = 0
    """Machines whose worker processes are killed once ``kill_at`` of the maps are done."""
    kill_at: float = 0.5
    """Share of map tasks done when the kill happens."""
    restart_seconds: float = 5.0
    """A killed worker's replacement registers this long after the kill."""
    seed: int = 1
    """Seed of every random draw."""


@dataclass
class Figures:
    """What one simulated run measured."""

    simulated_seconds: float = 0.0
    map_phase_seconds: float = 0.0
    wall_seconds: float = 0.0
    """Wall time of the whole simulation (the event loop and every call)."""
    cpu_seconds: float = 0.0
    """CPU time of the whole simulation (what machine load disturbs least)."""
    scheduler_seconds: float = 0.0
    """Wall time inside the scheduler's calls (assign, reports, heartbeats, expiry), as
    ``seconds`` per method; :attr:`cpu_share` turns them into CPU time (reading the CPU
    clock per call costs a system call, far more than most calls it would time)."""
    assignments: int = 0
    backups: int = 0
    assign_calls: int = 0
    phase: str = ""
    journal_records: int = 0
    journal_bytes: int = 0
    journal_seconds: float = 0.0
    checkpoints: int = 0
    """Partition-size checkpoints among the journal's records."""
    checkpoint_bytes: int = 0
    status_bytes: int = 0
    status_seconds: float = 0.0
    attempts: dict[str, int] = field(default_factory=dict)
    killed: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    """Scheduler calls by method."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time inside the scheduler by method."""

    @property
    def cpu_share(self) -> float:
        """The share of the run's wall time this process was on a CPU (1 on an idle
        machine): wall times per call times this estimate their CPU time."""
        return min(self.cpu_seconds / self.wall_seconds, 1.0) if self.wall_seconds else 1.0

    @property
    def assignments_per_second(self) -> float:
        """Assignments per second of CPU time spent in the ``assign`` calls that assigned
        (their wall time times :attr:`cpu_share`)."""
        spent = self.seconds.get("assign", 0.0) * self.cpu_share
        return self.assignments / spent if spent else 0.0


@dataclass(eq=False)
class Proc:
    """A simulated worker process."""

    id: str
    machine: int
    role: Kind
    alive: bool = True
    attempt: Assignment | None = None
    started: float = 0.0
    duration: float = 0.0
    fetch_seconds: float = 0.0
    """Reduce: its fetch's duration when every map output already exists."""
    fetch_until: float | None = None
    """Reduce: when its fetch ends (None while it waits for map outputs)."""
    token: int = 0
    """Bumped whenever its pending finish event is superseded."""


class Simulation:
    """One simulated job over the real master state."""

    def __init__(
        self, shape: Shape, work: Path, *, journal_sync: bool = False, verbose: bool = False
    ) -> None:
        self.shape = shape
        self.verbose = verbose
        self.rng = random.Random(shape.seed)
        self.now = 0.0
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.figures = Figures()
        self.tick = heartbeat_interval(shape.heartbeat_timeout)
        self.state = _job_state(shape, work, journal_sync)
        self.scheduler = self.state.scheduler
        self.procs: dict[str, Proc] = {}
        self.slow = set(
            self.rng.sample(range(shape.machines), round(shape.machines * shape.slow_share))
        )
        self.partitions = sort_shaped(shape.reduces, random.Random(shape.seed))
        """One map output's records and bytes per partition, sort-shaped, reported by every
        simulated map output (the master adds them to its per-partition sums)."""
        self.generation = 0
        self.killed = False
        self.map_end: float | None = None
        self.ticks = 0
        self.reported = {Kind.MAP: 0.0, Kind.REDUCE: 0.0}
        self.waiting: set[Proc] = set()
        """Idle workers that found no task: they ask again on the next tick."""
        self.running: dict[Kind, set[Proc]] = {Kind.MAP: set(), Kind.REDUCE: set()}

    # ---- the event loop -------------------------------------------------------------

    def at(self, when: float, what: str, payload: Any = None) -> None:
        heapq.heappush(self.events, (when, next(self.seq), what, payload))

    def run(self) -> Figures:
        started, cpu = time.perf_counter(), time.process_time()
        for machine in range(self.shape.machines):
            self.spawn(machine, Kind.MAP)
            self.spawn(machine, Kind.REDUCE)
        self.at(self.tick, "tick")
        while self.events and not self.scheduler.finished:
            self.now, _, what, payload = heapq.heappop(self.events)
            getattr(self, f"on_{what}")(payload)
        self.figures.wall_seconds = time.perf_counter() - started
        self.figures.cpu_seconds = time.process_time() - cpu
        self.figures.simulated_seconds = self.now
        self.figures.map_phase_seconds = self.map_end or self.now
        self.figures.phase = self.scheduler.phase.value
        self.figures.backups = sum(self.scheduler.backup_attempts().values())
        self.figures.attempts = self.scheduler.attempts_by_outcome()
        self.figures.journal_records = self.state.journal.records
        self.figures.journal_seconds = self.state.journal.seconds
        self.state.journal.close()
        self.figures.journal_bytes = Path(self.state.journal.path).stat().st_size
        self.count_checkpoints(Path(self.state.journal.path))
        self.measure_status()
        return self.figures

    def call(self, method: Any, *args: Any) -> Any:
        """Call the scheduler, timing it (per method)."""
        started = time.perf_counter()
        result = None
        try:
            result = method(*args)
            return result
        finally:
            spent = time.perf_counter() - started
            self.figures.scheduler_seconds += spent
            name = method.__name__
            if name == "assign" and result is None:
                name = "assign (nothing)"
            self.figures.calls[name] = self.figures.calls.get(name, 0) + 1
            self.figures.seconds[name] = self.figures.seconds.get(name, 0.0) + spent

    # ---- workers --------------------------------------------------------------------

    def spawn(self, machine: int, role: Kind) -> None:
        self.generation += 1
        name = f"{'mapper' if role is Kind.MAP else 'reducer'}-{machine}-{self.generation}"
        address = f"10.0.{machine // 250}.{machine % 250}:{self.generation}"
        worker_id = self.call(self.scheduler.register, name, role, address, self.now)
        proc = Proc(worker_id, machine, role)
        self.procs[worker_id] = proc
        self.ask(proc)

    def ask(self, proc: Proc) -> None:
        """An idle worker asks for a task; it waits for the next tick if there is none."""
        self.running[proc.role].discard(proc)
        if not proc.alive:
            self.waiting.discard(proc)
            return
        if self.at_end(proc.role) and self.reported[proc.role] <= self.now - self.tick:
            self.report(proc.role)  # at a phase's end speculation reads progress: 1 s fresh
        self.figures.assign_calls += 1
        assignment = self.call(self.scheduler.assign, proc.id, self.now)
        if assignment is None:
            self.waiting.add(proc)
            return
        self.waiting.discard(proc)
        self.running[proc.role].add(proc)
        self.figures.assignments += 1
        self.state.record({"event": "assigned", "attempt": assignment.attempt})
        self.state.journal.flush()  # as the master: durable before the worker hears
        proc.attempt, proc.started, proc.token = assignment, self.now, proc.token + 1
        slow = self.shape.slow_factor if proc.machine in self.slow else 1.0
        if assignment.kind is Kind.MAP:
            proc.duration = self.draw(self.shape.map_seconds) * slow
            self.at(self.now + proc.duration, "finish", (proc, proc.token))
        else:
            proc.duration = self.draw(self.shape.reduce_seconds) * slow
            proc.fetch_seconds = self.draw(self.shape.fetch_seconds) * slow
            proc.fetch_until = None
            self.fetch(proc)

    def fetch(self, proc: Proc) -> None:
        """Schedule the end of a reduce attempt's fetch, if every map output exists."""
        if not self.scheduler.map_phase_over:
            proc.fetch_until = None
            return
        tail = self.now + self.shape.fetch_tail_seconds
        proc.fetch_until = max(proc.started + proc.fetch_seconds, tail)
        self.at(proc.fetch_until + proc.duration, "finish", (proc, proc.token))

    def draw(self, median: float) -> float:
        return median * math.exp(self.rng.gauss(0.0, self.shape.sigma))

    def on_finish(self, payload: tuple[Proc, int]) -> None:
        proc, token = payload
        if not proc.alive or token != proc.token or proc.attempt is None:
            return
        attempt, proc.attempt = proc.attempt, None
        state, scheduler = self.state, self.scheduler
        if attempt.kind is Kind.MAP:
            # as ReportTask: the scheduler's map_succeeded, the map_done record and, when
            # one is due, a partition-size checkpoint
            self.call(state.map_output, attempt.attempt, self.partitions, {}, {}, [], self.now)
            state.journal.flush()
            self.after_map_change()
        elif self.call(scheduler.may_commit, attempt.attempt):
            state.record(
                {
                    "event": "committing",
                    "index": attempt.index,
                    "attempt": attempt.attempt,
                    "counters": {},
                    "timings": {},
                }
            )
            state.journal.flush()  # durable before the rename
            state.record({"event": "committed", "index": attempt.index, "attempt": attempt.attempt})
            state.journal.flush()
            self.call(scheduler.reduce_committed, attempt.attempt, self.now)
        self.ask(proc)

    def after_map_change(self) -> None:
        """Map outputs changed: start the kill, release waiting fetches at the map end."""
        scheduler = self.scheduler
        if (
            self.shape.kill
            and not self.killed
            and scheduler.maps_done >= self.shape.kill_at * len(scheduler.maps)
        ):
            self.killed = True
            self.at(self.now, "kill")
        if scheduler.map_phase_over:
            if self.map_end is None:
                self.map_end = self.now
            for proc in self.procs.values():
                waiting = proc.attempt is not None and proc.fetch_until is None
                if proc.alive and proc.role is Kind.REDUCE and waiting:
                    self.fetch(proc)

    def on_kill(self, _: object) -> None:
        machines = self.rng.sample(range(self.shape.machines), self.shape.kill)
        for proc in list(self.procs.values()):
            if proc.alive and proc.machine in machines:
                proc.alive = False
                proc.attempt = None
                self.running[proc.role].discard(proc)
                self.waiting.discard(proc)
                self.figures.killed += 1
                self.at(self.now + self.shape.restart_seconds, "restart", proc)

    def on_restart(self, proc: Proc) -> None:
        self.spawn(proc.machine, proc.role)

    def on_tick(self, _: object) -> None:
        """Every heartbeat interval: expiry, and idle workers ask again. Heartbeats with
        progress come every tick from a role whose phase is at its end (no idle task of
        its kind: the moment speculation looks at progress), every ``SPARSE`` ticks
        otherwise (enough for the heartbeat timeout; progress is not read then)."""
        scheduler, now = self.scheduler, self.now
        self.ticks += 1
        if self.verbose and self.ticks % 200 == 0:
            print(
                f"simulated {now:,.0f} s: {scheduler.maps_done:,} maps, "
                f"{scheduler.reduces_done:,} reduces done",
                file=sys.stderr,
                flush=True,
            )
        for role in Kind:
            if self.at_end(role) or self.ticks % SPARSE == 0:
                self.report(role)
        maps_before = scheduler.maps_done
        self.call(scheduler.expire, now)
        if scheduler.maps_done < maps_before:
            self.lost_fetches()
        if scheduler.maps_done != maps_before:
            self.after_map_change()
        for role in Kind:
            if not self.at_end(role):
                continue
            for proc in self.running[role]:
                if proc.attempt is not None and not self.call(
                    scheduler.attempt_wanted, proc.attempt.attempt
                ):
                    proc.attempt, proc.token = None, proc.token + 1  # cancelled or lost
                    self.waiting.add(proc)
        for proc in sorted(self.waiting, key=lambda p: p.id):
            self.ask(proc)
        self.at(now + self.tick, "tick")

    def at_end(self, role: Kind) -> bool:
        return not self.scheduler.tables[role].counts[State.IDLE]

    def report(self, role: Kind) -> None:
        """Heartbeats (with the running attempt's progress) of every live worker of a role."""
        scheduler, now = self.scheduler, self.now
        self.reported[role] = now
        started = time.perf_counter()
        for proc in self.procs.values():
            if proc.role is not role or not proc.alive:
                continue
            if scheduler.heartbeat(proc.id, now) and proc.attempt is not None:
                scheduler.progress(proc.attempt.attempt, self.progress(proc), now)
                self.figures.calls["progress"] = self.figures.calls.get("progress", 0) + 1
            self.figures.calls["heartbeat"] = self.figures.calls.get("heartbeat", 0) + 1
        spent = time.perf_counter() - started
        self.figures.scheduler_seconds += spent
        self.figures.seconds["heartbeat"] = self.figures.seconds.get("heartbeat", 0.0) + spent

    def lost_fetches(self) -> None:
        """After outputs were lost: reducers still fetching wait for the reruns."""
        for proc in self.running[Kind.REDUCE]:
            if proc.fetch_until is not None and proc.fetch_until > self.now:
                proc.fetch_until, proc.token = None, proc.token + 1

    def progress(self, proc: Proc) -> float:
        elapsed = self.now - proc.started
        if proc.role is Kind.MAP:
            return min(elapsed / proc.duration, 1.0)
        if proc.fetch_until is None or self.now < proc.fetch_until:
            available = self.scheduler.maps_done / max(len(self.scheduler.maps), 1)
            return FETCH_SHARE * min(available, elapsed / proc.fetch_seconds, 1.0)
        reduced = min((self.now - proc.fetch_until) / proc.duration, 1.0)
        return FETCH_SHARE + (1 - FETCH_SHARE) * reduced

    # ---- reports --------------------------------------------------------------------

    def count_checkpoints(self, path: Path) -> None:
        head = b'{"event":"%s"' % CHECKPOINT.encode()
        with path.open("rb") as lines:
            for line in lines:
                if line.startswith(head):
                    self.figures.checkpoints += 1
                    self.figures.checkpoint_bytes += len(line)

    def measure_status(self, repeat: int = 3) -> None:
        """The master's /status report (what the operator copies into the CR status)."""
        best = math.inf
        body = ""
        for _ in range(repeat):
            started = time.perf_counter()
            body = _json(self.state.status_report().document())
            best = min(best, time.perf_counter() - started)
        self.figures.status_bytes = len(body.encode())
        self.figures.status_seconds = best


def sort_shaped(reduces: int, rng: random.Random, split: int = 64 * 2**20) -> OutputSizes:
    """A sort's map output: ``split`` bytes of 100-byte records spread over the partitions
    (each within 10 % of the mean)."""
    sizes = [int(split / max(reduces, 1) * rng.uniform(0.9, 1.1)) for _ in range(reduces)]
    return OutputSizes([size // 100 for size in sizes], sizes)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _job_state(shape: Shape, work: Path, journal_sync: bool) -> JobState:
    """The master's real JobState over a job of ``shape`` (splits of a virtual input)."""
    job = specs.parse_job(
        {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "metadata": {"name": "simulated"},
            "spec": {
                "app": {"builtin": "wordcount"},
                "input": {"paths": ["/virtual/input"]},
                "output": {"path": str(work / "out")},
                "reduceTasks": shape.reduces,
                "shuffle": {"mode": "barrier" if shape.barrier else "streaming"},
                "faultTolerance": {
                    "speculative": shape.speculative,
                    "heartbeatTimeout": shape.heartbeat_timeout,
                    "maxTaskAttempts": shape.max_attempts,
                },
            },
        }
    )
    split = 64 * 2**20
    splits = [Split("/virtual/input", i * split, (i + 1) * split) for i in range(shape.maps)]
    plan = JobPlan(job, splits, [], False, "hash")
    path = work / "journal.jsonl"
    journal: journals.Journal = (
        journals.FileJournal.create(str(path)) if journal_sync else _UnsyncedJournal.create(path)
    )
    return JobState(plan, OutputDir(str(work / "out")), journal)


class _UnsyncedJournal(journals.FileJournal):
    """The real journal writer without its fsync (measured apart)."""

    @classmethod
    def create(cls, path: Path) -> _UnsyncedJournal:  # type: ignore[override]
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(str(path), path.open("wb"))

    def _write(self, line: bytes) -> None:
        self.stream.write(line)


def finished(figures: Figures) -> bool:
    return figures.phase == Phase.SUCCEEDED.value
