"""The scheduler's records: tasks, attempts, workers, map outputs, and their names.

Pure data (no rules): :mod:`kubemr.scheduler` decides, :mod:`kubemr.speculation` judges
stragglers, :mod:`kubemr.journal` makes these records durable and reads them back, and
:mod:`kubemr.report` projects them. Attempt ids (``m3.a2``: map task 3, attempt 2) are the
names every other process uses.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field

from kubemr import contract
from kubemr.splits import Split

UNCLAIMED = "pending:"
"""Prefix of the holder of a recovered map output whose worker has not registered again
since the master restarted (``pending:<worker name>``)."""


def heartbeat_interval(timeout: float) -> float:
    """Seconds between a worker's heartbeats (which carry progress), given the timeout."""
    return min(1.0, timeout / 4)


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


class Outcome(enum.StrEnum):
    """What became of an attempt (strings: they are metric labels and summary keys)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISCARDED = "discarded"
    """Another attempt of its task finished first."""
    LOST = "lost"
    """Its worker died, reconnected or asked for other work; or its map output was lost."""
    RECOVERED = "recovered"
    """Done under an earlier master of the job (read back from the journal)."""


class Rule(enum.StrEnum):
    """What chose a backup attempt's original as a straggler."""

    RATE = "rate"
    """Its progress rate against the typical one."""
    ELAPSED = "elapsed"
    """No progress reported yet: its elapsed time against the typical attempt's."""


@dataclass(slots=True)
class Attempt:
    id: str
    kind: Kind
    index: int
    worker: str
    started: float
    finished: float | None = None
    outcome: Outcome = Outcome.RUNNING
    backup: bool = False
    progress: float = 0.0
    """Share of the attempt's work done (0..1), as its worker last reported it."""
    reported: float | None = None
    """When that progress was reported."""
    rule: Rule | None = None
    """Backups: the rule that chose the original as a straggler."""


@dataclass(slots=True)
class MapOutputRef:
    """Where a completed map task's output lives, and its size. Its partitions' sizes
    stay with the mapper (:mod:`kubemr.partitionsizes`)."""

    index: int
    attempt: str
    worker: str
    """The holder's worker id (``pending:<name>`` until a recovered output is claimed)."""
    address: str
    records: int
    """Records in all its partitions."""
    bytes: int
    """Bytes of all its partitions' sorted runs."""
    name: str = ""
    """The holder's worker name, which outlives a master (its id does not)."""

    @property
    def pending(self) -> bool:
        return self.worker.startswith(UNCLAIMED)


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


@dataclass(slots=True)
class Worker:
    id: str
    name: str
    kind: Kind
    """The kind of task it pulls (a mapper pulls map tasks)."""
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
    partition_sizes: tuple[list[int], list[int]] | None = None
    """The last journaled checkpoint's records and bytes per reduce partition."""
    sized_maps: list[int] = field(default_factory=list)
    """The map tasks counted in those sizes (:mod:`kubemr.partitionsizes`)."""


@dataclass(frozen=True)
class Assignment:
    kind: Kind
    index: int
    attempt: str
    split: Split | None
