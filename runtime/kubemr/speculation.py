"""Speculative execution: which running task gets a backup attempt, LATE-style.

The rule of LATE (Zaharia et al., OSDI 2008) within the original paper's budget. Workers
report each attempt's progress (0..1) in their heartbeats. An attempt's rate is its
progress over the time from its start to the report (to now once reports are
``STALE_AFTER`` heartbeat intervals old, so a dead or hung attempt's rate falls). The
typical rate is the median over the kind's succeeded attempts (1 / duration) and its
running attempts with progress; a typical attempt takes 1 / that. An attempt with progress
is a straggler if its rate is at most ``1 / SLOW_FACTOR`` of the typical one and its
estimated time left, ``(1 - progress) / rate`` less the time since the report, exceeds the
typical time by ``MIN_LAG`` seconds (so a backup is expected to finish first). An attempt
with no progress yet falls back to elapsed time: at least ``SLOW_FACTOR`` times the typical
time and ``MIN_LAG`` seconds more. No backup goes to a worker whose own last succeeded
attempt of the kind was that slow; backups of a kind stay within ``BACKUP_SHARE`` of its
tasks (at least one).

When backups are asked for (the end of a phase, reduces early in streaming mode) is the
scheduler's decision (:mod:`kubemr.scheduler`); this module keeps the rates and judges.
Pure: no I/O, no clocks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass

from kubemr.attempts import Attempt, Kind, Outcome, Rule, State, Task, TaskTable, heartbeat_interval

SLOW_FACTOR = 1.5
"""A running attempt whose rate is this many times below the typical one is a straggler."""
MIN_LAG = 0.5
"""...if a backup is expected to finish at least this many seconds before it, so tiny
tasks are never backed up."""
BACKUP_SHARE = 0.1
"""Backup attempts per kind, as a share of that kind's tasks (at least one)."""
STALE_AFTER = 2
"""Heartbeat intervals after which an attempt's last progress report is stale."""

ScanKey = tuple[Kind, float, int, int]
"""(kind, now, the scheduler's change count, the kind's table's change count): a scan is
valid while its key is."""


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


@dataclass(frozen=True)
class Straggler:
    """A running task worth a backup attempt, and why."""

    task: Task
    left: float
    """Estimated seconds until its attempt finishes (infinite when it reported no progress)."""
    rule: Rule
    started: float
    """When its running attempt started (ties go to the older one)."""


@dataclass
class Scan:
    """The stragglers of one kind as found at one moment of one state (see
    :meth:`Speculation.scan`): reused by every idle worker asking at that moment."""

    key: ScanKey
    typical: float | None
    candidates: list[tuple[Straggler, str]]
    """Stragglers, best first, with the running attempt each was judged by."""


def _duration_rate(attempt: Attempt) -> float:
    assert attempt.finished is not None
    return 1.0 / max(attempt.finished - attempt.started, 1e-3)


class Speculation:
    """The rates and budget of one job's backups, over the scheduler's tables and attempts
    (shared, read only)."""

    def __init__(
        self, tables: dict[Kind, TaskTable], attempts: dict[str, Attempt], heartbeat_timeout: float
    ) -> None:
        self.tables = tables
        self.attempts = attempts
        self.heartbeat_timeout = heartbeat_timeout
        self.backups: dict[Kind, int] = {Kind.MAP: 0, Kind.REDUCE: 0}
        """Backup attempts launched, by kind."""
        self.rates: dict[Kind, list[float]] = {Kind.MAP: [], Kind.REDUCE: []}
        """Sorted 1 / duration of the succeeded attempts of each kind."""
        self.running: dict[Kind, set[str]] = {Kind.MAP: set(), Kind.REDUCE: set()}
        self._scans: dict[Kind, Scan] = {}

    # ---- bookkeeping (the scheduler calls these as attempts start and end) -------------

    def started(self, attempt: Attempt) -> None:
        self.running[attempt.kind].add(attempt.id)
        if attempt.backup:
            self.backups[attempt.kind] += 1

    def ended(self, attempt: Attempt) -> None:
        self.running[attempt.kind].discard(attempt.id)
        if attempt.outcome is Outcome.SUCCEEDED:
            bisect.insort(self.rates[attempt.kind], _duration_rate(attempt))

    def forget(self, attempt: Attempt) -> None:
        """A succeeded attempt no longer counts (its output was lost)."""
        rates = self.rates[attempt.kind]
        rate = _duration_rate(attempt)
        at = bisect.bisect_left(rates, rate)
        if at < len(rates) and rates[at] == rate:
            del rates[at]

    def within_budget(self, kind: Kind) -> bool:
        """Whether another backup of ``kind`` fits ``BACKUP_SHARE`` of its tasks."""
        return self.backups[kind] < max(1, int(len(self.tables[kind].tasks) * BACKUP_SHARE))

    # ---- judging --------------------------------------------------------------------

    def rate(self, attempt: Attempt, now: float) -> tuple[float, float] | None:
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

    def typical_seconds(self, kind: Kind, now: float) -> float | None:
        """Seconds a typical attempt of ``kind`` takes: 1 / the median rate of its succeeded
        attempts and of its running attempts with progress; None if nothing is known."""
        running = []
        for attempt_id in self.running[kind]:
            if measured := self.rate(self.attempts[attempt_id], now):
                running.append(measured[0])
        running.sort()
        done = self.rates[kind]
        if not running and not done:
            return None
        if len(running) > len(done):
            running, done = done, running
        return 1.0 / median_of_union(done, running)

    def judge(self, attempt: Attempt, typical: float, now: float) -> tuple[float, Rule] | None:
        """Whether a running attempt is a straggler, given the seconds a typical attempt
        of its kind takes: its estimated seconds left and the rule that decided, or None."""
        measured = self.rate(attempt, now)
        if measured is not None:
            rate, left = measured
            if rate * SLOW_FACTOR <= 1.0 / typical and left >= typical + MIN_LAG:
                return left, Rule.RATE
            return None
        if now - attempt.started >= max(SLOW_FACTOR * typical, typical + MIN_LAG):
            return math.inf, Rule.ELAPSED
        return None

    def slow_worker(
        self, worker_id: str, kind: Kind, typical: float, succeeded: Iterable[str]
    ) -> bool:
        """Whether the worker's last succeeded attempt of ``kind`` (among ``succeeded``, its
        succeeded attempt ids) was a straggler's."""
        finished = [
            (a.finished, a.finished - a.started)
            for a in map(self.attempts.__getitem__, succeeded)
            if a.worker == worker_id
            and a.kind is kind
            and a.outcome is Outcome.SUCCEEDED
            and a.finished is not None
        ]
        return bool(finished) and max(finished)[1] >= SLOW_FACTOR * typical

    def scan(self, key: ScanKey, now: float, rate_rule_only: bool) -> Scan:
        """The typical attempt time of ``key``'s kind and its stragglers, best first, judged
        at ``now`` (by the rate rule only if ``rate_rule_only``): computed once per moment
        and state, then shared by every idle worker asking at that moment (a phase's end
        has as many asking as there are workers)."""
        kind = key[0]
        scan = self._scans.get(kind)
        if scan is not None and scan.key == key:
            return scan
        typical = self.typical_seconds(kind, now)
        found: list[tuple[float, float, int, Straggler, str]] = []
        table = self.tables[kind]
        for index in sorted(table.running) if typical is not None else ():
            task = table.tasks[index]
            if len(task.running) != 1:
                continue
            attempt_id = next(iter(task.running))
            attempt = self.attempts[attempt_id]
            judged = self.judge(attempt, typical, now) if typical is not None else None
            if judged is None or (rate_rule_only and judged[1] is not Rule.RATE):
                continue
            candidate = Straggler(task, *judged, started=attempt.started)
            found.append((-candidate.left, candidate.started, index, candidate, attempt_id))
        found.sort(key=lambda f: f[:3])  # the longest left, then the oldest, then by index
        scan = Scan(key, typical, [(f[3], f[4]) for f in found])
        self._scans[kind] = scan
        return scan

    def backup_launched(self, before: ScanKey, after: ScanKey) -> None:
        """A backup was launched, moving the state from ``before`` to ``after``. It changes
        no other candidate's judgement (its own attempt has no progress yet): a scan valid
        before stays valid for the next idle worker."""
        scan = self._scans.get(before[0])
        if scan is not None and scan.key == before:
            scan.key = after

    def straggler(
        self, key: ScanKey, worker_id: str, succeeded: Iterable[str], rate_rule_only: bool
    ) -> Straggler | None:
        """The running task of ``key``'s kind most worth a backup attempt on this worker
        (whose succeeded attempt ids are ``succeeded``), if any, once no task of the kind
        is idle and within the budget."""
        kind = key[0]
        if self.tables[kind].counts[State.IDLE]:
            return None  # not the end of the phase yet
        if not self.within_budget(kind):
            return None
        scan = self.scan(key, key[1], rate_rule_only)
        if scan.typical is None:
            return None
        for candidate, attempt_id in scan.candidates:
            task = candidate.task
            if task.running != {attempt_id}:
                continue  # backed up meanwhile
            if self.attempts[attempt_id].worker != worker_id:
                # (checked last: most idle workers at a phase's end find no straggler)
                slow = self.slow_worker(worker_id, kind, scan.typical, succeeded)
                return None if slow else candidate
        return None

    # ---- reports --------------------------------------------------------------------

    def launched(self) -> dict[str, int]:
        """Backup attempts launched, by kind."""
        return {kind.value: n for kind, n in self.backups.items()}

    def summary(self) -> dict[str, object]:
        """What speculative execution did: backups launched by kind and by the rule that
        chose them, backups that won (committed first), and backups as a share of all
        attempts."""
        backups = [a for a in self.attempts.values() if a.backup]
        won = {kind.value: 0 for kind in Kind}
        rules = {rule.value: 0 for rule in Rule}
        for attempt in backups:
            rule = str(attempt.rule or "")
            rules[rule] = rules.get(rule, 0) + 1
            if attempt.outcome is Outcome.SUCCEEDED:
                won[attempt.kind.value] += 1
        total = len(self.attempts)
        return {
            "backups": self.launched(),
            "backupsWon": won,
            "backupsByRule": rules,
            "attempts": total,
            "backupShare": round(len(backups) / total, 4) if total else 0.0,
        }
