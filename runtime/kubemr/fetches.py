"""What a reduce attempt has fetched, is fetching, and must drop or retry. Pure, no I/O.

A reducer fetches its partition of every map output as the master reports them
(:mod:`kubemr.fetcher` drives the calls). A fetch that fails (the mapper is gone, or no
longer has the output, or sent bytes that are not frames) is dropped and counted, and
the next fetch of that map task waits ``FETCH_RETRY_DELAY`` seconds per failure so far. A
fetch the master says is stale (its map output was lost or replaced) is dropped the same
way. Completed fetches are kept: their data was read whole, whatever happened to the
mapper since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

FETCH_SHARE = 0.5
"""The share of a reduce attempt's progress that fetching stands for; reducing is the rest."""
FETCH_RETRY_DELAY = 0.2
"""Seconds a reducer waits before fetching a map task's output again after a failure
(times the number of failures so far for that task)."""


class MapOutput(Protocol):
    """A map output as the master names it (``kubemr.proto``'s ``MapOutput``)."""

    @property
    def map_task(self) -> int: ...

    @property
    def attempt_id(self) -> str: ...


Ref = TypeVar("Ref", bound=MapOutput)
Run = TypeVar("Run")


@dataclass
class Fetches(Generic[Ref, Run]):
    """One reduce attempt's fetches, by map task."""

    done: dict[int, Run] = field(default_factory=dict)
    """Completed fetches."""
    inflight: dict[int, Ref] = field(default_factory=dict)
    """Fetches started and not over."""
    failures: dict[int, int] = field(default_factory=dict)
    """Failed fetches so far, by map task."""
    total: int | None = None
    """Map tasks in the job, once the master said."""
    idle_poll: bool = False
    """The master's last answer had nothing new: wait a heartbeat before asking again."""

    @property
    def complete(self) -> bool:
        """Every map task's output is fetched."""
        return self.total is not None and len(self.done) >= self.total

    def have(self) -> list[int]:
        """Map tasks fetched or being fetched (the master leaves them out of its answer)."""
        return sorted({*self.done, *self.inflight})

    def fetching(self) -> list[str]:
        """Map attempts being fetched (the master says which of them went stale)."""
        return sorted(ref.attempt_id for ref in self.inflight.values())

    def retry_delay(self, map_task: int) -> float:
        """Seconds to wait before fetching ``map_task``'s output (0 the first time)."""
        return FETCH_RETRY_DELAY * self.failures.get(map_task, 0)

    def answered(
        self, total: int, lost: Iterable[int], outputs: Iterable[Ref], complete: bool
    ) -> tuple[list[Ref], list[Ref]]:
        """The master answered: ``total`` map tasks, the ``lost`` ones among those being
        fetched, new ``outputs`` and whether the map phase is over. Returns the fetches to
        drop (stale) and those to start (now in flight)."""
        self.total = total
        lost = list(lost)
        stale = [self.inflight.pop(index) for index in lost if index in self.inflight]
        started = []
        outputs = list(outputs)
        for ref in outputs:
            if ref.map_task not in self.done and ref.map_task not in self.inflight:
                self.inflight[ref.map_task] = ref
                started.append(ref)
        self.idle_poll = complete and not outputs and not lost
        return stale, started

    def fetched(self, map_task: int, run: Run) -> float | None:
        """A fetch completed; the attempt's progress now, if the total is known."""
        self.inflight.pop(map_task)
        self.done[map_task] = run
        return FETCH_SHARE * len(self.done) / self.total if self.total else None

    def failed(self, map_task: int) -> Ref:
        """A fetch failed: it is dropped and counted. Returns what was being fetched."""
        self.failures[map_task] = self.failures.get(map_task, 0) + 1
        return self.inflight.pop(map_task)

    def runs(self) -> list[Run]:
        """The fetched runs in map task order (each key's values in input order)."""
        return [self.done[i] for i in sorted(self.done)]
