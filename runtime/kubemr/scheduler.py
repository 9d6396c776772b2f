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
- Speculative execution (when enabled): once no task of a kind is idle (the end of the
  phase), an idle worker asking for work gets a backup attempt of the running task (with
  a single attempt) expected to finish last, if it is a straggler
  (:mod:`kubemr.speculation` keeps the rates and judges). Reduce backups wait for the
  map phase to end, except in streaming mode by the rate rule: there every reducer
  fetches each map output as it completes, so peers' rates are comparable and one whose
  progress stopped falls behind. The first attempt to finish wins; the others are
  discarded (the master's heartbeat reply tells their workers to cancel them).
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

import math

from kubemr.attempts import (
    UNCLAIMED,
    Assignment,
    Attempt,
    Kind,
    MapOutputRef,
    Outcome,
    Phase,
    Recovery,
    State,
    Task,
    TaskTable,
    Worker,
    attempt_id,
    parse_attempt_id,
)
from kubemr.partitionsizes import OutputSizes, PartitionSizes
from kubemr.speculation import ScanKey, Speculation, Straggler
from kubemr.splits import Split

FETCH_FAILURE_THRESHOLD = 2
"""Fetch-failure reports against one map attempt's output that declare it lost."""
BLACKLIST_AFTER = 3
"""Failed attempts on one worker after which it is avoided."""


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
        self.claim_deadline: float | None = None  # recovered outputs unclaimed after: lost
        self._worker_seq = 0
        # Indexes, so that no request scans every task or attempt:
        self._held: dict[str, set[int]] = {}  # output holder (worker id or pending:) -> maps
        self._succeeded: dict[str, list[str]] = {}  # worker id -> succeeded attempts
        self._epoch = 0  # bumped by every change a straggler scan depends on
        self.speculator = Speculation(self.tables, self.attempts, heartbeat_timeout)
        self.sizes = PartitionSizes(len(splits), reduce_tasks)
        """Each reduce partition's input over the map outputs reported (O(M + R))."""

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

    def register(self, name: str, kind: Kind, address: str, now: float) -> str:
        """A worker (re-)registers; it inherits the map outputs of its earlier self.

        Its earlier self is a live registration of the same name, role and address (the
        worker lost the master for a moment and abandoned what it was running), or the
        pending owner of recovered outputs (the master restarted). Recovered outputs of
        a worker of that name now at another address are gone with its disk.
        """
        self._worker_seq += 1
        worker_id = f"{kind.value}-{self._worker_seq}-{name}"
        for earlier in list(self.workers.values()):
            if earlier.alive and (earlier.name, earlier.kind, earlier.address) == (
                name,
                kind,
                address,
            ):
                self._retire(earlier, worker_id, now)
        self.workers[worker_id] = Worker(worker_id, name, kind, address, now)
        self._epoch += 1
        if kind is Kind.MAP:
            for index in sorted(self._held.get(UNCLAIMED + name, ())):
                task = self.maps[index]
                output = task.output
                if output is None or output.worker != UNCLAIMED + name:
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
            if attempt.worker == worker.id and attempt.outcome is Outcome.RUNNING:
                self._end_attempt(attempt, Outcome.LOST, now)

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
            if attempt.outcome is Outcome.SUCCEEDED:
                self.speculator.forget(attempt)
            attempt.outcome = Outcome.LOST
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
            if previous.outcome is Outcome.RUNNING:
                self._end_attempt(previous, Outcome.LOST, now)
        if self._avoided(worker):
            return None
        if worker.kind is Kind.MAP:
            task = self.tables[Kind.MAP].first_idle()
        elif self.barrier and not self.map_phase_over:
            task = None
        else:
            task = self.tables[Kind.REDUCE].first_idle()
        straggler = None
        if task is None and self.speculative:
            straggler = self._straggler(worker.kind, worker_id, now)
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
            rule=straggler.rule if straggler is not None else None,
        )
        self.attempts[attempt.id] = attempt
        self.speculator.started(attempt)
        before = self._scan_key(task.kind, now)
        task.state = State.RUNNING
        task.running.add(attempt.id)
        worker.attempt = attempt.id
        self._epoch += 1
        if backup:
            self.speculator.backup_launched(before, self._scan_key(task.kind, now))
        split = self.splits[task.index] if task.kind is Kind.MAP else None
        return Assignment(task.kind, task.index, attempt.id, split)

    def _avoided(self, worker: Worker) -> bool:
        """Blacklisted: too many failures here, and a healthier peer is alive."""
        if worker.failures < BLACKLIST_AFTER:
            return False
        return any(
            w.alive and w.kind is worker.kind and w.failures < BLACKLIST_AFTER
            for w in self.workers.values()
        )

    def blacklisted(self) -> list[str]:
        """Live workers that get no tasks because too many attempts failed on them."""
        return [w.id for w in self.workers.values() if w.alive and self._avoided(w)]

    def _straggler(self, kind: Kind, worker_id: str, now: float) -> Straggler | None:
        """The running task most worth a backup attempt on this worker, if any: reduces
        only after the map phase, or early by the rate rule in streaming mode."""
        early = kind is Kind.REDUCE and not self.map_phase_over
        if early and self.barrier:
            return None
        succeeded = self._succeeded.get(worker_id, ())
        return self.speculator.straggler(self._scan_key(kind, now), worker_id, succeeded, early)

    def _scan_key(self, kind: Kind, now: float) -> ScanKey:
        return (kind, now, self._epoch, self.tables[kind].changes)

    def _task(self, attempt: Attempt) -> Task:
        return (self.maps if attempt.kind is Kind.MAP else self.reduces)[attempt.index]

    def _end_attempt(self, attempt: Attempt, outcome: Outcome, now: float) -> None:
        attempt.outcome = outcome
        attempt.finished = now
        self.speculator.ended(attempt)
        if outcome is Outcome.SUCCEEDED:
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
        if attempt is None or attempt.outcome is not Outcome.RUNNING:
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
            owner = UNCLAIMED + ref.name
            task = self.maps[index]
            task.state = State.DONE
            self._hold(
                task,
                MapOutputRef(
                    index, ref.attempt, owner, ref.address, ref.records, ref.bytes, ref.name
                ),
            )
            self.attempts[ref.attempt] = Attempt(
                ref.attempt, Kind.MAP, index, owner, now, now, outcome=Outcome.RECOVERED
            )
        for index, committed_by in sorted(recovery.committed.items()):
            kind = parse_attempt_id(committed_by)[0]
            self._tasks(kind)[index].state = State.DONE
            self.attempts[committed_by] = Attempt(
                committed_by, kind, index, "", now, now, outcome=Outcome.RECOVERED
            )
        if recovery.partition_sizes is not None:
            self.sizes.restore(*recovery.partition_sizes, recovery.sized_maps)
        if recovery.map_outputs:
            self.claim_deadline = now + self.heartbeat_timeout
        self.version += 1
        self._epoch += 1

    def recovered(self) -> dict[str, int]:
        """Recovered map outputs still in use and recovered reduce tasks, by kind."""
        counts = {kind.value: 0 for kind in Kind}
        for attempt in self.attempts.values():
            if attempt.outcome is Outcome.RECOVERED:
                counts[attempt.kind.value] += 1
        return counts

    def _tasks(self, kind: Kind) -> list[Task]:
        return self.maps if kind is Kind.MAP else self.reduces

    # ---- reports --------------------------------------------------------------------

    def map_succeeded(self, attempt_id: str, output: OutputSizes, now: float) -> bool:
        """Record a finished map attempt with its sizes per partition (added to
        :attr:`sizes`, not kept); False if it was discarded."""
        attempt = self._live_attempt(attempt_id)
        if attempt is None or attempt.kind is not Kind.MAP:
            return False
        task = self._task(attempt)
        if task.state is State.DONE:
            self._end_attempt(attempt, Outcome.DISCARDED, now)
            return False
        worker = self.workers[attempt.worker]
        self._end_attempt(attempt, Outcome.SUCCEEDED, now)
        task.state = State.DONE
        records, size = output.totals()
        self._hold(
            task,
            MapOutputRef(
                task.index, attempt_id, worker.id, worker.address, records, size, worker.name
            ),
        )
        self.sizes.add(task.index, output)
        for other in list(task.running):  # a backup (or the original) lost the race
            self._end_attempt(self.attempts[other], Outcome.DISCARDED, now)
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
        self._end_attempt(attempt, Outcome.SUCCEEDED, now)
        task.state = State.DONE
        for other in list(task.running):
            self._end_attempt(self.attempts[other], Outcome.DISCARDED, now)

    def attempt_failed(self, attempt_id: str, error: str, now: float) -> bool:
        """Record a failed attempt; the job fails after ``max_attempts`` failures."""
        attempt = self._live_attempt(attempt_id)
        if attempt is None:
            return False
        task = self._task(attempt)
        self._end_attempt(attempt, Outcome.FAILED, now)
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
        return self.speculator.launched()

    def speculation(self) -> dict[str, object]:
        """What speculative execution did (:meth:`kubemr.speculation.Speculation.summary`)."""
        return self.speculator.summary()

    def attempts_by_outcome(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts.values():
            key = f"{attempt.kind.value}_{attempt.outcome}"
            counts[key] = counts.get(key, 0) + 1
        return counts
