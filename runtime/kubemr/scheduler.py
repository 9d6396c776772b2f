"""The master's state: tasks, attempts and workers, and every decision about them.

Pure: no I/O, no clocks (callers pass ``now``), no gRPC. The master's servicer decodes a
request, calls one method here and encodes the answer, so every scheduling rule is
tested directly.

Rules (DESIGN.md, "Data flow" and "Fault tolerance"):
- M map tasks and R reduce tasks, independent of the number of workers; mappers pull
  map tasks, reducers pull reduce tasks, one at a time.
- Reduce tasks are handed out at once in streaming mode and after the last map in
  barrier mode; a reducer learns map output locations as they complete.
- Every attempt has an id (``m3.a1``: map task 3, attempt 1). The first attempt of a
  task to finish wins; a late or duplicate one is discarded.
- A failed attempt returns its task to idle; ``max_attempts`` failures fail the job.
- A map-only job (no reduce tasks) commits each map attempt's output like a reduce
  attempt's (:meth:`Scheduler.may_commit`); committed map output is in the job's output,
  not on a worker's disk, so a worker's death loses none of it.
- A worker silent past the heartbeat timeout is dead: its running attempts and its
  completed map tasks (whose output was on its disk) go back to idle.
- A reducer that cannot fetch a map output reports it; after
  ``FETCH_FAILURE_THRESHOLD`` reports against the same map attempt (or at once if its
  worker is dead) the output is declared lost and the map task runs again. Reducers
  learn which of the outputs they are fetching went stale (:meth:`Scheduler.stale`).
- Speculative execution (when enabled), LATE-style (Zaharia et al., OSDI 2008): once
  no task of a kind is idle (the end of the phase), an idle worker asking for work gets
  a backup attempt of the running task (with a single attempt) expected to finish last,
  if it is a straggler. Workers report each attempt's progress (0..1) in their
  heartbeats (:meth:`Scheduler.progress`). An attempt's rate is its progress over the
  time from its start to the report (to now once reports are ``STALE_AFTER`` heartbeat
  intervals old, so a dead or hung attempt's rate falls). The typical rate is the median
  over the kind's succeeded attempts (1 / duration) and its running attempts with
  progress; a typical attempt takes 1 / that. An attempt with progress is a straggler
  if its rate is at most ``1 / SLOW_FACTOR`` of the typical one and its estimated time
  left, ``(1 - progress) / rate`` less the time since the report, exceeds the typical
  time by ``MIN_LAG`` seconds (so a backup is expected to finish first). An attempt with
  no progress yet falls back to elapsed time: at least ``SLOW_FACTOR`` times the typical
  time and ``MIN_LAG`` seconds more. Reduce backups wait for the map phase to end,
  except in streaming mode by the rate rule: there every reducer fetches each map output
  as it completes, so peers' rates are comparable and one whose progress stopped falls
  behind. No backup goes to a worker whose own last succeeded attempt of the kind was
  that slow; backups of a kind stay within ``BACKUP_SHARE`` of its tasks (at least
  one). The first attempt to finish wins; the others are discarded (the master's
  heartbeat reply tells their workers to cancel them).
- A worker on which ``BLACKLIST_AFTER`` attempts failed gets no more tasks while
  another worker of its role that is not blacklisted is alive (as Hadoop does).
- A worker that registers again under the same name, role and address while its
  earlier registration is still alive has reconnected (it lost the master for a
  moment): the earlier registration's running attempts are lost, its map outputs are
  the new one's.
- Master recovery (:meth:`Scheduler.restore`): a restarted master restores what an
  earlier master of the job made durable. Committed reduce tasks are done; journaled
  map outputs are done too, held by a *pending* owner known only by worker name and
  address until a mapper of that name and address registers and inherits them. Outputs
  still unclaimed ``heartbeat_timeout`` seconds after the restore are lost and their
  maps run again; so is an output whose worker comes back at another address, and one
  a reducer cannot fetch. Attempt numbers continue after the journaled ones, so a new
  attempt id never names an earlier master's attempt.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
from dataclasses import dataclass, field

from kubemr import contract
from kubemr.splits import Split

FETCH_FAILURE_THRESHOLD = 2
"""Fetch-failure reports against one map attempt's output that declare it lost."""
SLOW_FACTOR = 1.5
"""A running attempt whose rate is this many times below the typical one is a straggler."""
MIN_LAG = 0.5
"""...if a backup is expected to finish at least this many seconds before it, so tiny
tasks are never backed up."""
BACKUP_SHARE = 0.1
"""Backup attempts per kind, as a share of that kind's tasks (at least one)."""
BLACKLIST_AFTER = 3
"""Failed attempts on one worker after which it is avoided."""
STALE_AFTER = 2
"""Heartbeat intervals after which an attempt's last progress report is stale."""


def heartbeat_interval(timeout: float) -> float:
    """Seconds between a worker's heartbeats (which carry progress), given the timeout."""
    return min(1.0, timeout / 4)


PENDING = "pending:"
"""Prefix of the owner of a recovered map output whose worker has not registered yet."""


class Kind(enum.Enum):
    MAP = "map"
    REDUCE = "reduce"


def attempt_id(kind: Kind, index: int, number: int) -> str:
    """``m3.a2``: map task 3, attempt 2."""
    return f"{'m' if kind is Kind.MAP else 'r'}{index}.a{number}"


def parse_attempt_id(text: str) -> tuple[Kind, int, int]:
    """The kind, task index and attempt number an attempt id names; ValueError if none."""
    head, _, number = text.partition(".a")
    if head[:1] not in ("m", "r") or not head[1:].isdigit() or not number.isdigit():
        raise ValueError(f"not an attempt id: {text!r}")
    return (Kind.MAP if head[0] == "m" else Kind.REDUCE), int(head[1:]), int(number)


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"


Phase = contract.Phase
"""The job's phase (:class:`kubemr.contract.Phase`: the operator reads it too)."""


@dataclass(slots=True)
class Attempt:
    id: str
    kind: Kind
    index: int
    worker: str
    started: float
    finished: float | None = None
    outcome: str = "running"  # running | succeeded | failed | discarded | lost | recovered
    backup: bool = False
    progress: float = 0.0
    """Share of the attempt's work done (0..1), as its worker last reported it."""
    reported: float | None = None
    """When that progress was reported."""
    rule: str = ""
    """Backups: the rule that chose the original as a straggler (``rate`` or ``elapsed``)."""


@dataclass(slots=True)
class MapOutputRef:
    """Where a completed map task's output lives."""

    index: int
    attempt: str
    worker: str
    """The holder's worker id (``pending:<name>`` until a recovered output is claimed)."""
    address: str
    partitions: list[tuple[int, int]]
    name: str = ""
    """The holder's worker name, which outlives a master (its id does not)."""

    @property
    def pending(self) -> bool:
        return self.worker.startswith(PENDING)


class Task:
    """One map or reduce task. Setting its state keeps its :class:`TaskTable`'s index."""

    __slots__ = ("_state", "_table", "attempts", "failures", "index", "kind", "output", "running")

    def __init__(self, kind: Kind, index: int, table: TaskTable | None = None) -> None:
        self.kind = kind
        self.index = index
        self._state = State.IDLE
        self._table = table
        self.attempts = 0
        """Highest attempt number handed out."""
        self.running: set[str] = set()
        """Ids of its running attempts."""
        self.failures: list[str] = []
        """Errors of its failed attempts."""
        self.output: MapOutputRef | None = None
        """A done map task's output."""

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        if value is not self._state:
            if self._table is not None:
                self._table.moved(self.index, self._state, value)
            self._state = value

    def __repr__(self) -> str:
        return f"Task({self.kind.value}, {self.index}, {self._state.value})"


class TaskTable:
    """The tasks of one kind, indexed by state, so that the scheduler never scans them
    per request: counts per state, the lowest-numbered idle task (a heap, lazily
    cleaned) and the set of running ones."""

    def __init__(self, kind: Kind, count: int) -> None:
        self.tasks = [Task(kind, i, self) for i in range(count)]
        self.counts = {State.IDLE: count, State.RUNNING: 0, State.DONE: 0}
        self.idle = list(range(count))  # a sorted list is a heap
        self.running: set[int] = set()
        self.changes = 0
        """Bumped on every state change (a key of the scheduler's straggler scan)."""

    def moved(self, index: int, old: State, new: State) -> None:
        self.changes += 1
        self.counts[old] -= 1
        self.counts[new] += 1
        if new is State.IDLE:
            heapq.heappush(self.idle, index)
        if new is State.RUNNING:
            self.running.add(index)
        elif old is State.RUNNING:
            self.running.discard(index)

    def first_idle(self) -> Task | None:
        """The idle task with the lowest index (as a scan in index order would find)."""
        while self.idle:
            task = self.tasks[self.idle[0]]
            if task.state is State.IDLE:
                return task
            heapq.heappop(self.idle)
        return None


def kth_of_union(a: list[float], b: list[float], k: int) -> float:
    """The ``k``-th smallest value (from 0) of two sorted lists taken together, in
    O(log min(len(a), len(b))) (``b`` the shorter, typically)."""
    lo, hi = max(0, k + 1 - len(a)), min(k + 1, len(b))
    while lo < hi:  # find how many of the k+1 smallest come from b
        i = (lo + hi) // 2
        if b[i] < a[k - i]:
            lo = i + 1
        else:
            hi = i
    candidates = [a[k - lo]] if k - lo >= 0 else []
    if lo > 0:
        candidates.append(b[lo - 1])
    return max(candidates)


def median_of_union(a: list[float], b: list[float]) -> float:
    """``statistics.median(a + b)`` of two sorted lists, without building ``a + b``."""
    n = len(a) + len(b)
    if n % 2:
        return kth_of_union(a, b, n // 2)
    return (kth_of_union(a, b, n // 2 - 1) + kth_of_union(a, b, n // 2)) / 2


@dataclass
class _Scan:
    """The stragglers of one kind as found at one moment of one state (see
    :meth:`Scheduler._scan`): reused by every idle worker asking at that moment."""

    key: tuple[Kind, float, int, int]
    typical: float | None
    candidates: list[tuple[Straggler, str]]
    """Stragglers, best first, with the running attempt each was judged by."""


@dataclass(slots=True)
class Worker:
    id: str
    name: str
    role: Kind
    address: str
    last_seen: float
    alive: bool = True
    attempt: str | None = None
    told_to_exit: bool = False
    failures: int = 0


@dataclass
class Recovery:
    """What earlier masters of this job made durable (read back by :mod:`kubemr.journal`)."""

    attempts: dict[tuple[Kind, int], int] = field(default_factory=dict)
    """Highest attempt number handed out, per (kind, task index)."""
    failures: dict[tuple[Kind, int], list[str]] = field(default_factory=dict)
    """Errors of failed attempts, per (kind, task index)."""
    map_outputs: dict[int, MapOutputRef] = field(default_factory=dict)
    """Completed map outputs by task index; ``worker`` is ignored, ``name`` is the holder."""
    committed: dict[int, str] = field(default_factory=dict)
    """Committed reduce tasks (in a map-only job, map tasks): index -> attempt id."""


@dataclass(frozen=True)
class Straggler:
    """A running task worth a backup attempt, and why."""

    task: Task
    left: float
    """Estimated seconds until its attempt finishes (infinite when it reported no progress)."""
    rule: str
    """``rate`` (progress rate against the typical one) or ``elapsed`` (no progress known)."""
    started: float
    """When its running attempt started (ties go to the older one)."""


@dataclass(frozen=True)
class Assignment:
    kind: Kind
    index: int
    attempt: str
    split: Split | None


class Scheduler:
    """Tasks, attempts and workers of one job."""

    def __init__(
        self,
        splits: list[Split],
        reduce_tasks: int,
        *,
        barrier: bool,
        max_attempts: int,
        heartbeat_timeout: float,
        speculative: bool = False,
    ) -> None:
        self.splits = splits
        self.speculative = speculative
        self.barrier = barrier
        self.max_attempts = max_attempts
        self.heartbeat_timeout = heartbeat_timeout
        self.tables = {Kind.MAP: TaskTable(Kind.MAP, len(splits))}
        self.tables[Kind.REDUCE] = TaskTable(Kind.REDUCE, reduce_tasks)
        self.maps = self.tables[Kind.MAP].tasks
        self.reduces = self.tables[Kind.REDUCE].tasks
        self.map_only = reduce_tasks == 0
        self.workers: dict[str, Worker] = {}
        self.attempts: dict[str, Attempt] = {}
        self.error: str | None = None
        self.version = 0  # bumps whenever map outputs change
        self.fetch_failures: dict[str, list[str]] = {}  # map attempt -> reporting attempts
        self.backups: dict[Kind, int] = {Kind.MAP: 0, Kind.REDUCE: 0}
        self.claim_deadline: float | None = None  # recovered outputs unclaimed after: lost
        self._worker_seq = 0
        # Indexes, so that no request scans every task or attempt:
        self._held: dict[str, set[int]] = {}  # output holder (worker id or pending:) -> maps
        self._succeeded: dict[str, list[str]] = {}  # worker id -> succeeded attempts
        self._rates: dict[Kind, list[float]] = {Kind.MAP: [], Kind.REDUCE: []}
        """Sorted 1 / duration of the succeeded attempts of each kind."""
        self._running: dict[Kind, set[str]] = {Kind.MAP: set(), Kind.REDUCE: set()}
        self._epoch = 0  # bumped by every change a straggler scan depends on
        self._scans: dict[Kind, _Scan] = {}

    # ---- progress -------------------------------------------------------------------

    @property
    def maps_done(self) -> int:
        return self.tables[Kind.MAP].counts[State.DONE]

    @property
    def reduces_done(self) -> int:
        return self.tables[Kind.REDUCE].counts[State.DONE]

    def held(self, worker_id: str) -> int:
        """Map outputs the worker holds."""
        return len(self._held.get(worker_id, ()))

    def _hold(self, task: Task, output: MapOutputRef | None) -> None:
        """Set a map task's output, keeping the index of outputs by holder."""
        if task.output is not None:
            held = self._held.get(task.output.worker)
            if held is not None:
                held.discard(task.index)
        task.output = output
        if output is not None:
            self._held.setdefault(output.worker, set()).add(task.index)

    @property
    def map_phase_over(self) -> bool:
        return self.maps_done == len(self.maps)

    @property
    def phase(self) -> Phase:
        if self.error is not None:
            return Phase.FAILED
        if self.reduces_done == len(self.reduces) and (self.reduces or self.map_phase_over):
            return Phase.SUCCEEDED
        if not self.workers:
            return Phase.PENDING
        return Phase.REDUCING if self.map_phase_over else Phase.MAPPING

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)

    # ---- workers --------------------------------------------------------------------

    def register(self, name: str, role: Kind, address: str, now: float) -> str:
        """A worker (re-)registers; it inherits the map outputs of its earlier self.

        Its earlier self is a live registration of the same name, role and address (the
        worker lost the master for a moment and abandoned what it was running), or the
        pending owner of recovered outputs (the master restarted). Recovered outputs of
        a worker of that name now at another address are gone with its disk.
        """
        self._worker_seq += 1
        worker_id = f"{role.value}-{self._worker_seq}-{name}"
        for earlier in list(self.workers.values()):
            if earlier.alive and (earlier.name, earlier.role, earlier.address) == (
                name,
                role,
                address,
            ):
                self._retire(earlier, worker_id, now)
        self.workers[worker_id] = Worker(worker_id, name, role, address, now)
        self._epoch += 1
        if role is Kind.MAP:
            for index in sorted(self._held.get(PENDING + name, ())):
                task = self.maps[index]
                output = task.output
                if output is None or output.worker != PENDING + name:
                    continue
                if output.address == address:
                    self._move_output(task, worker_id)
                else:
                    self._lose_output(task)
        return worker_id

    def _retire(self, earlier: Worker, successor: str, now: float) -> None:
        """An earlier registration of a reconnected worker: its attempts are over (the
        worker abandoned them), its map outputs are its successor's."""
        earlier.alive = False
        self._end_running(earlier, now)
        for index in sorted(self._held.get(earlier.id, ())):
            task = self.maps[index]
            if task.output is not None and task.output.worker == earlier.id:
                self._move_output(task, successor)

    def _end_running(self, worker: Worker, now: float) -> None:
        """A worker's running attempt (it runs one at a time: ``worker.attempt``) is lost."""
        if worker.attempt is not None:
            attempt = self.attempts[worker.attempt]
            if attempt.worker == worker.id and attempt.outcome == "running":
                self._end_attempt(attempt, "lost", now)

    def _move_output(self, task: Task, worker_id: str) -> None:
        output = task.output
        assert output is not None
        self._held.get(output.worker, set()).discard(task.index)
        output.worker = worker_id
        self._held.setdefault(worker_id, set()).add(task.index)
        self.attempts[output.attempt].worker = worker_id
        self._succeeded.setdefault(worker_id, []).append(output.attempt)
        self._epoch += 1

    def known(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        return worker is not None and worker.alive

    def heartbeat(self, worker_id: str, now: float) -> bool:
        """Record that a worker is alive; False if it is unknown or was declared dead."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive:
            return False
        worker.last_seen = now
        return True

    def progress(self, attempt_id: str, value: float, now: float) -> bool:
        """Record a running attempt's progress (clamped to 0..1); False if it is not live."""
        attempt = self._live_attempt(attempt_id)
        if attempt is None or math.isnan(value):
            return False
        attempt.progress = min(max(value, 0.0), 1.0)
        attempt.reported = now
        self._epoch += 1
        return True

    def _rate(self, attempt: Attempt, now: float) -> tuple[float, float] | None:
        """A running attempt's progress rate (per second) and estimated seconds left, or
        None if it reported no progress. The rate is measured up to the report, so a
        report's lag does not make an attempt look slow; once reports are stale (its
        worker died or hangs) it is measured up to now, and so falls."""
        if attempt.progress <= 0 or attempt.reported is None:
            return None
        stale = now - attempt.reported > STALE_AFTER * heartbeat_interval(self.heartbeat_timeout)
        until = now if stale else attempt.reported
        rate = attempt.progress / max(until - attempt.started, 1e-3)
        left = (1.0 - attempt.progress) / rate - (now - until)
        return rate, max(left, 0.0)

    def expire(self, now: float) -> list[str]:
        """Declare dead every worker silent past the timeout; return their ids."""
        dead = [
            w
            for w in self.workers.values()
            if w.alive and now - w.last_seen > self.heartbeat_timeout
        ]
        for worker in dead:
            self.worker_lost(worker.id, now)
        lost = [w.id for w in dead]
        if self.claim_deadline is not None and now > self.claim_deadline:
            self.claim_deadline = None
            for task in self.maps:
                if task.output is not None and task.output.pending:
                    lost.append(task.output.worker)
                    self._lose_output(task)
        return list(dict.fromkeys(lost))

    def worker_lost(self, worker_id: str, now: float) -> None:
        """A worker is gone: rerun what it was running and the map outputs it held."""
        worker = self.workers[worker_id]
        worker.alive = False
        self._end_running(worker, now)
        for index in sorted(self._held.get(worker_id, ())):
            task = self.maps[index]
            if task.state is State.DONE and task.output and task.output.worker == worker_id:
                self._lose_output(task)

    def _lose_output(self, task: Task) -> None:
        """A completed map task's output is gone: the task is idle again."""
        if task.output is not None:
            attempt = self.attempts[task.output.attempt]
            if attempt.outcome == "succeeded":
                self._forget_rate(attempt)
            attempt.outcome = "lost"
        task.state = State.IDLE
        self._hold(task, None)
        self.version += 1
        self._epoch += 1

    # ---- assignment -----------------------------------------------------------------

    def assign(self, worker_id: str, now: float) -> Assignment | None:
        """The next task for an idle worker, or None if there is nothing for it now."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive or self.finished:
            return None
        worker.last_seen = now
        if worker.attempt is not None:  # it asked again: its previous attempt is over
            previous = self.attempts[worker.attempt]
            if previous.outcome == "running":
                self._end_attempt(previous, "lost", now)
        if self._avoided(worker):
            return None
        if worker.role is Kind.MAP:
            task = self.tables[Kind.MAP].first_idle()
        elif self.barrier and not self.map_phase_over:
            task = None
        else:
            task = self.tables[Kind.REDUCE].first_idle()
        straggler = None
        if task is None and self.speculative:
            straggler = self._straggler(worker.role, worker_id, now)
            task = straggler.task if straggler is not None else None
        backup = straggler is not None
        if task is None:
            return None
        task.attempts += 1
        attempt = Attempt(
            attempt_id(task.kind, task.index, task.attempts),
            task.kind,
            task.index,
            worker_id,
            now,
            backup=backup,
            rule=straggler.rule if straggler is not None else "",
        )
        if backup:
            self.backups[task.kind] += 1
        self.attempts[attempt.id] = attempt
        self._running[task.kind].add(attempt.id)
        scan = self._scans.get(task.kind)
        fresh = scan is not None and scan.key == self._scan_key(task.kind, now)
        task.state = State.RUNNING
        task.running.add(attempt.id)
        worker.attempt = attempt.id
        self._epoch += 1
        if backup and fresh:
            # A backup changes no other candidate's judgement (its own attempt has no
            # progress yet): the scan stays valid for the next idle worker.
            assert scan is not None
            scan.key = self._scan_key(task.kind, now)
        split = self.splits[task.index] if task.kind is Kind.MAP else None
        return Assignment(task.kind, task.index, attempt.id, split)

    def _avoided(self, worker: Worker) -> bool:
        """Blacklisted: too many failures here, and a healthier peer is alive."""
        if worker.failures < BLACKLIST_AFTER:
            return False
        return any(
            w.alive and w.role is worker.role and w.failures < BLACKLIST_AFTER
            for w in self.workers.values()
        )

    def blacklisted(self) -> list[str]:
        """Live workers that get no tasks because too many attempts failed on them."""
        return [w.id for w in self.workers.values() if w.alive and self._avoided(w)]

    def _typical_seconds(self, kind: Kind, now: float) -> float | None:
        """Seconds a typical attempt of ``kind`` takes: 1 / the median rate of its succeeded
        attempts and of its running attempts with progress; None if nothing is known."""
        running = []
        for attempt_id in self._running[kind]:
            if measured := self._rate(self.attempts[attempt_id], now):
                running.append(measured[0])
        running.sort()
        done = self._rates[kind]
        if not running and not done:
            return None
        if len(running) > len(done):
            running, done = done, running
        return 1.0 / median_of_union(done, running)

    @staticmethod
    def _duration_rate(attempt: Attempt) -> float:
        assert attempt.finished is not None
        return 1.0 / max(attempt.finished - attempt.started, 1e-3)

    def _forget_rate(self, attempt: Attempt) -> None:
        """A succeeded attempt no longer counts (its output was lost)."""
        rates = self._rates[attempt.kind]
        rate = self._duration_rate(attempt)
        at = bisect.bisect_left(rates, rate)
        if at < len(rates) and rates[at] == rate:
            del rates[at]

    def _slow_worker(self, worker_id: str, kind: Kind, typical: float) -> bool:
        """Whether the worker's last succeeded attempt of ``kind`` was a straggler's."""
        finished = [
            (a.finished, a.finished - a.started)
            for a in map(self.attempts.__getitem__, self._succeeded.get(worker_id, ()))
            if a.worker == worker_id
            and a.kind is kind
            and a.outcome == "succeeded"
            and a.finished is not None
        ]
        return bool(finished) and max(finished)[1] >= SLOW_FACTOR * typical

    def _straggler(self, kind: Kind, worker_id: str, now: float) -> Straggler | None:
        """The running task most worth a backup attempt on this worker, if any."""
        table = self.tables[kind]
        early = kind is Kind.REDUCE and not self.map_phase_over
        if early and self.barrier:
            return None
        if table.counts[State.IDLE]:
            return None  # not the end of the phase yet
        if self.backups[kind] >= max(1, int(len(table.tasks) * BACKUP_SHARE)):
            return None
        scan = self._scan(kind, now)
        if scan.typical is None:
            return None
        for candidate, attempt_id in scan.candidates:
            task = candidate.task
            if task.running != {attempt_id}:
                continue  # backed up meanwhile
            if self.attempts[attempt_id].worker != worker_id:
                # (checked last: most idle workers at a phase's end find no straggler)
                slow = self._slow_worker(worker_id, kind, scan.typical)
                return None if slow else candidate
        return None

    def _scan_key(self, kind: Kind, now: float) -> tuple[Kind, float, int, int]:
        return (kind, now, self._epoch, self.tables[kind].changes)

    def _scan(self, kind: Kind, now: float) -> _Scan:
        """The typical attempt time of ``kind`` and its stragglers, best first, judged at
        ``now``: computed once per moment and state, then shared by every idle worker
        asking at that moment (a phase's end has as many asking as there are workers)."""
        key = self._scan_key(kind, now)
        scan = self._scans.get(kind)
        if scan is not None and scan.key == key:
            return scan
        typical = self._typical_seconds(kind, now)
        early = kind is Kind.REDUCE and not self.map_phase_over
        found: list[tuple[float, float, int, Straggler, str]] = []
        table = self.tables[kind]
        for index in sorted(table.running) if typical is not None else ():
            task = table.tasks[index]
            if len(task.running) != 1:
                continue
            attempt_id = next(iter(task.running))
            attempt = self.attempts[attempt_id]
            judged = self._judge(attempt, typical, now) if typical is not None else None
            if judged is None or (early and judged[1] != "rate"):
                continue
            candidate = Straggler(task, *judged, started=attempt.started)
            found.append((-candidate.left, candidate.started, index, candidate, attempt_id))
        found.sort(key=lambda f: f[:3])  # the longest left, then the oldest, then by index
        scan = _Scan(key, typical, [(f[3], f[4]) for f in found])
        self._scans[kind] = scan
        return scan

    def _judge(self, attempt: Attempt, typical: float, now: float) -> tuple[float, str] | None:
        """Whether a running attempt is a straggler, given the seconds a typical attempt
        of its kind takes: its estimated seconds left and the rule that decided, or None."""
        measured = self._rate(attempt, now)
        if measured is not None:
            rate, left = measured
            if rate * SLOW_FACTOR <= 1.0 / typical and left >= typical + MIN_LAG:
                return left, "rate"
            return None
        if now - attempt.started >= max(SLOW_FACTOR * typical, typical + MIN_LAG):
            return math.inf, "elapsed"
        return None

    def _task(self, attempt: Attempt) -> Task:
        return (self.maps if attempt.kind is Kind.MAP else self.reduces)[attempt.index]

    def _end_attempt(self, attempt: Attempt, outcome: str, now: float) -> None:
        attempt.outcome = outcome
        attempt.finished = now
        self._running[attempt.kind].discard(attempt.id)
        if outcome == "succeeded":
            bisect.insort(self._rates[attempt.kind], self._duration_rate(attempt))
            self._succeeded.setdefault(attempt.worker, []).append(attempt.id)
        self._epoch += 1
        task = self._task(attempt)
        task.running.discard(attempt.id)
        worker = self.workers.get(attempt.worker)
        if worker is not None and worker.attempt == attempt.id:
            worker.attempt = None
        if task.state is State.RUNNING and not task.running:
            task.state = State.IDLE

    def _live_attempt(self, attempt_id: str) -> Attempt | None:
        attempt = self.attempts.get(attempt_id)
        if attempt is None or attempt.outcome != "running":
            return None
        worker = self.workers.get(attempt.worker)
        if worker is None or not worker.alive:
            return None
        return attempt

    # ---- recovery -------------------------------------------------------------------

    def restore(self, recovery: Recovery, now: float) -> None:
        """Take over what an earlier master of this job made durable (before any worker
        registers). Recovered attempts count as ``recovered`` in :meth:`attempts_by_outcome`."""
        for (kind, index), number in recovery.attempts.items():
            task = self._tasks(kind)[index]
            task.attempts = max(task.attempts, number)
        for (kind, index), errors in recovery.failures.items():
            self._tasks(kind)[index].failures = list(errors)
        for index, ref in sorted(recovery.map_outputs.items()):
            owner = PENDING + ref.name
            task = self.maps[index]
            task.state = State.DONE
            self._hold(
                task,
                MapOutputRef(
                    index, ref.attempt, owner, ref.address, list(ref.partitions), ref.name
                ),
            )
            self.attempts[ref.attempt] = Attempt(
                ref.attempt, Kind.MAP, index, owner, now, now, outcome="recovered"
            )
        for index, committed_by in sorted(recovery.committed.items()):
            kind = parse_attempt_id(committed_by)[0]
            self._tasks(kind)[index].state = State.DONE
            self.attempts[committed_by] = Attempt(
                committed_by, kind, index, "", now, now, outcome="recovered"
            )
        if recovery.map_outputs:
            self.claim_deadline = now + self.heartbeat_timeout
        self.version += 1
        self._epoch += 1

    def recovered(self) -> dict[str, int]:
        """Recovered map outputs still in use and recovered reduce tasks, by kind."""
        counts = {kind.value: 0 for kind in Kind}
        for attempt in self.attempts.values():
            if attempt.outcome == "recovered":
                counts[attempt.kind.value] += 1
        return counts

    def _tasks(self, kind: Kind) -> list[Task]:
        return self.maps if kind is Kind.MAP else self.reduces

    # ---- reports --------------------------------------------------------------------

    def map_succeeded(self, attempt_id: str, partitions: list[tuple[int, int]], now: float) -> bool:
        """Record a finished map attempt; False if it was discarded."""
        attempt = self._live_attempt(attempt_id)
        if attempt is None or attempt.kind is not Kind.MAP:
            return False
        task = self._task(attempt)
        if task.state is State.DONE:
            self._end_attempt(attempt, "discarded", now)
            return False
        worker = self.workers[attempt.worker]
        self._end_attempt(attempt, "succeeded", now)
        task.state = State.DONE
        self._hold(
            task,
            MapOutputRef(
                task.index, attempt_id, worker.id, worker.address, partitions, worker.name
            ),
        )
        for other in list(task.running):  # a backup (or the original) lost the race
            self._end_attempt(self.attempts[other], "discarded", now)
        self.version += 1
        return True

    def may_commit(self, attempt_id: str) -> bool:
        """Whether a finished reduce attempt (or a map-only job's map attempt) is the one
        to commit."""
        attempt = self._live_attempt(attempt_id)
        return (
            attempt is not None
            and (attempt.kind is Kind.REDUCE or self.map_only)
            and self._task(attempt).state is not State.DONE
        )

    def reduce_committed(self, attempt_id: str, now: float) -> None:
        """A reduce attempt (or a map-only job's map attempt) was committed."""
        attempt = self.attempts[attempt_id]
        task = self._task(attempt)
        self._end_attempt(attempt, "succeeded", now)
        task.state = State.DONE
        for other in list(task.running):
            self._end_attempt(self.attempts[other], "discarded", now)

    def attempt_failed(self, attempt_id: str, error: str, now: float) -> bool:
        """Record a failed attempt; the job fails after ``max_attempts`` failures."""
        attempt = self._live_attempt(attempt_id)
        if attempt is None:
            return False
        task = self._task(attempt)
        self._end_attempt(attempt, "failed", now)
        task.failures.append(error)
        self.workers[attempt.worker].failures += 1
        if len(task.failures) >= self.max_attempts and task.state is not State.DONE:
            what = (
                f"map task {task.index} (split {self.splits[task.index]})"
                if task.kind is Kind.MAP
                else f"reduce task {task.index} (partition {task.index})"
            )
            self.error = f"{what} failed {len(task.failures)} times; last error:\n{error}"
        return True

    def fail(self, error: str) -> None:
        if self.error is None:
            self.error = error

    def map_outputs(self, have: set[int]) -> tuple[list[MapOutputRef], bool]:
        """Completed map outputs not in ``have``, and whether the map phase is over.

        In barrier mode nothing is released until the map phase is over.
        """
        complete = self.map_phase_over
        if self.barrier and not complete:
            return [], False
        refs = [
            t.output
            for t in self.maps
            if t.state is State.DONE and t.output is not None and t.index not in have
        ]
        return refs, complete

    def fetch_failed(self, reporter: str, map_index: int, map_attempt: str) -> bool:
        """A reduce attempt could not fetch a map attempt's output.

        Returns True if this report declared the output lost (the map task is idle
        again). Reports from attempts no longer running, or against an output that is
        already lost or replaced, change nothing.
        """
        if self._live_attempt(reporter) is None or not 0 <= map_index < len(self.maps):
            return False
        task = self.maps[map_index]
        if task.state is not State.DONE or task.output is None:
            return False
        if task.output.attempt != map_attempt:
            return False
        reports = self.fetch_failures.setdefault(map_attempt, [])
        reports.append(reporter)
        holder = self.workers.get(task.output.worker)
        if len(reports) >= FETCH_FAILURE_THRESHOLD or holder is None or not holder.alive:
            self._lose_output(task)
            return True
        return False

    def stale(self, fetching: list[str]) -> list[int]:
        """Map tasks among the map attempts a reducer is fetching whose output is no
        longer that attempt's (lost, or replaced by a rerun)."""
        lost = []
        for map_attempt in fetching:
            attempt = self.attempts.get(map_attempt)
            if attempt is None or attempt.kind is not Kind.MAP:
                continue
            output = self.maps[attempt.index].output
            if output is None or output.attempt != map_attempt:
                lost.append(attempt.index)
        return sorted(set(lost))

    def attempt_wanted(self, attempt_id: str) -> bool:
        return self._live_attempt(attempt_id) is not None

    def backup_attempts(self) -> dict[str, int]:
        """Backup attempts launched, by kind."""
        return {kind.value: n for kind, n in self.backups.items()}

    def speculation(self) -> dict[str, object]:
        """What speculative execution did: backups launched by kind and by the rule that
        chose them, backups that won (committed first), and backups as a share of all
        attempts."""
        backups = [a for a in self.attempts.values() if a.backup]
        won = {kind.value: 0 for kind in Kind}
        rules = {"rate": 0, "elapsed": 0}
        for attempt in backups:
            rules[attempt.rule] = rules.get(attempt.rule, 0) + 1
            if attempt.outcome == "succeeded":
                won[attempt.kind.value] += 1
        total = len(self.attempts)
        return {
            "backups": self.backup_attempts(),
            "backupsWon": won,
            "backupsByRule": rules,
            "attempts": total,
            "backupShare": round(len(backups) / total, 4) if total else 0.0,
        }

    def attempts_by_outcome(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts.values():
            key = f"{attempt.kind.value}_{attempt.outcome}"
            counts[key] = counts.get(key, 0) + 1
        return counts
