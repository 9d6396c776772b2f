"""The commit of a task attempt's output: the sequence that makes exactly one attempt's
part file its task's (a reduce attempt's; a map attempt's in a map-only job).

One attempt of a task at a time (another reporting meanwhile waits, then finds the task
done), on the master's event loop:

1. decide: the scheduler says whether the attempt is the one to commit (its task is not
   done, the attempt is live); if not, its temporary output is discarded;
2. journal the intent, ``committing`` (with the attempt's counters, timings and skipped
   records), and wait until it is durable: on recovery a part file in place is trusted
   only with this record (:mod:`kubemr.journal`);
3. check again (the attempt may have been lost while the record was written), and rename
   the temporary output into place (:meth:`kubemr.outputdir.OutputDir.commit`);
4. journal ``committed`` and tell the scheduler.

A rename that fails fails the attempt (journaled ``failed``). Whatever a crash or a stop
leaves between these steps, a resuming master's reconciliation resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubemr.attempts import Kind, parse_attempt_id
from kubemr.outputdir import OutputDir
from kubemr.scheduler import Scheduler


class Commits:
    """The job's commits: the sequence above, and which tasks have one in progress."""

    def __init__(
        self,
        scheduler: Scheduler,
        output: OutputDir,
        record: Callable[[dict[str, Any]], None],
        durable: Callable[[], Awaitable[None]],
    ) -> None:
        self.scheduler = scheduler
        self.output = output
        self.record = record
        """Add a journal record (durable once ``durable`` returns)."""
        self.durable = durable
        self._held: dict[tuple[Kind, int], tuple[asyncio.Lock, list[int]]] = {}
        """Tasks with a commit in progress (or waited for): a lock and its users."""

    @contextlib.asynccontextmanager
    async def _holding(self, attempt_id: str) -> AsyncIterator[None]:
        """Hold the commit of the attempt's task."""
        try:
            kind, index, _ = parse_attempt_id(attempt_id)
        except ValueError:
            kind, index = Kind.REDUCE, -1  # not an attempt: may_commit refuses it
        entry = self._held.setdefault((kind, index), (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if not entry[1][0]:
                del self._held[kind, index]

    async def commit(
        self,
        attempt_id: str,
        counters: dict[str, int],
        timings: dict[str, float],
        skipped: list[str],
        now: float,
    ) -> float | None:
        """Commit a finished attempt if it is the one to; the seconds its commit took, or
        None if it was not committed (discarded, lost meanwhile, or the rename failed)."""
        async with self._holding(attempt_id):
            if not self.scheduler.may_commit(attempt_id):
                self.output.discard(attempt_id)
                return None
            started = time.perf_counter()
            details = {"counters": counters, "timings": timings, "skipped": skipped}
            error = await self._commit(attempt_id, details, now)
            if error is None:
                return time.perf_counter() - started
            if self.scheduler.attempt_failed(attempt_id, error, now):
                self.record({"event": "failed", "attempt": attempt_id, "error": error})
            return None

    async def _commit(self, attempt_id: str, details: dict[str, Any], now: float) -> str | None:
        """Steps 2 to 4 (``details``: the intent's counters, timings and skipped records);
        the error if the attempt could not be committed."""
        scheduler = self.scheduler
        index = scheduler.attempts[attempt_id].index
        self.record({"event": "committing", "index": index, "attempt": attempt_id, **details})
        await self.durable()  # a part file is renamed into place only once this is
        if not scheduler.may_commit(attempt_id):  # its worker was lost meanwhile
            self.output.discard(attempt_id)
            return "commit abandoned: the attempt was lost while its commit was journaled"
        try:
            self.output.commit(self.output.temp_path(attempt_id, index), index)
        except OSError as exc:
            return f"commit failed: {exc}"
        self.record({"event": "committed", "index": index, "attempt": attempt_id})
        scheduler.reduce_committed(attempt_id, now)
        return None
