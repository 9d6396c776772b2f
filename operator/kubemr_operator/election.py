"""Leader election on a coordination.k8s.io/v1 Lease: the decisions, without I/O.

The rules are client-go's (``k8s.io/client-go/tools/leaderelection``), so that the
operator's replicas behave as every controller-manager's do:

- A candidate never compares the lease's ``renewTime`` with its own clock (clocks of
  two machines disagree). It remembers *when it saw the record change* (its own
  monotonic clock) and counts the lease as expired ``leaseDurationSeconds`` after that.
- The holder renews every ``retry_period``; if no renewal has succeeded for
  ``renew_deadline`` seconds it stops leading, before any other candidate can count the
  lease as expired (``renew_deadline < lease_duration``).
- Every write carries the ``resourceVersion`` it was decided on, so two candidates that
  both see an expired lease cannot both take it: the API server refuses the second
  write (409) and that candidate stands by.

:func:`judge` turns one observation of the lease into a verdict (create it, take it
over, renew it, or stand by and look again after a while); :func:`claim` is the record
to write for a verdict; :func:`still_leading` is the holder's own deadline. The I/O
around them is :mod:`kubemr_operator.elector`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from kubemr_operator.settings import LeaderElection


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says (its spec, and the version it was read at)."""

    holder: str
    """``holderIdentity``; empty when nobody holds it (released)."""
    duration: float
    """``leaseDurationSeconds``: how long others wait after its last change."""
    transitions: int = 0
    """``leaseTransitions``: how often the holder changed."""
    acquired: datetime | None = None
    """``acquireTime``: when the holder took it (wall clock, informational)."""
    renewed: datetime | None = None
    """``renewTime``: when the holder last renewed it (wall clock, informational)."""
    version: str = ""
    """``metadata.resourceVersion`` read with it: the write is conditional on it."""


@dataclass(frozen=True)
class Memory:
    """What a candidate remembers between two looks at the lease."""

    record: LeaseRecord | None = None
    """The record last seen (None: never seen one)."""
    seen_at: float = 0.0
    """Monotonic seconds when the record was last seen *changing*."""


class Action(enum.Enum):
    """What a candidate does about the lease."""

    CREATE = "create"
    """No lease exists: create one that names this candidate."""
    TAKE_OVER = "take over"
    """The lease is released or expired: write this candidate into it."""
    RENEW = "renew"
    """This candidate holds the lease: write a fresh renewTime."""
    STAND_BY = "stand by"
    """Another candidate holds an unexpired lease: look again later."""


@dataclass(frozen=True)
class Verdict:
    """What a candidate does after one look at the lease."""

    action: Action
    memory: Memory
    """What to remember for the next look."""
    look_again_in: float
    """Seconds until the next look (for STAND_BY: until the lease could expire, at most
    ``retry_period``; otherwise ``retry_period``)."""


def judge(
    identity: str, lease: LeaseRecord | None, memory: Memory, now: float, timing: LeaderElection
) -> Verdict:
    """What ``identity`` does about ``lease`` (None: there is none), observed at ``now``
    (monotonic seconds), given what it remembers."""
    if lease is None:
        return Verdict(Action.CREATE, Memory(None, now), timing.retry_period)
    if memory.record is None or _changed(memory.record, lease):
        memory = Memory(lease, now)
    else:
        memory = Memory(lease, memory.seen_at)
    if lease.holder == identity:
        return Verdict(Action.RENEW, memory, timing.retry_period)
    expires_in = memory.seen_at + lease.duration - now
    if lease.holder and expires_in > 0:
        return Verdict(Action.STAND_BY, memory, min(timing.retry_period, expires_in))
    return Verdict(Action.TAKE_OVER, memory, timing.retry_period)


def _changed(before: LeaseRecord, after: LeaseRecord) -> bool:
    # The version changes with every write; the spec comparison covers a record whose
    # version the reader did not get (a fake server, a cache).
    return before.version != after.version or replace(before, version="") != replace(
        after, version=""
    )


def claim(
    identity: str,
    action: Action,
    lease: LeaseRecord | None,
    wall_now: datetime,
    timing: LeaderElection,
) -> LeaseRecord:
    """The record ``identity`` writes for ``action`` (CREATE, TAKE_OVER or RENEW)."""
    if action is Action.STAND_BY:
        raise ValueError("a candidate that stands by writes nothing")
    duration = timing.lease_duration
    if action is Action.RENEW and lease is not None:
        return replace(lease, duration=duration, renewed=wall_now)
    transitions = 0 if lease is None else lease.transitions + 1
    return LeaseRecord(
        holder=identity,
        duration=duration,
        transitions=transitions,
        acquired=wall_now,
        renewed=wall_now,
        version="" if lease is None else lease.version,
    )


def released(lease: LeaseRecord, wall_now: datetime) -> LeaseRecord:
    """The record a holder writes when it stops on purpose: nobody holds it, so that a
    standby takes over at its next look instead of after the lease duration (client-go's
    ``ReleaseOnCancel`` writes the same)."""
    return replace(lease, holder="", duration=1, acquired=wall_now, renewed=wall_now)


def still_leading(renewed_at: float, now: float, timing: LeaderElection) -> bool:
    """Whether a holder whose last successful renewal *started* at ``renewed_at``
    (monotonic seconds) may still act at ``now``. False ``lease_duration -
    renew_deadline`` seconds before any other candidate can see the lease expire."""
    return now - renewed_at < timing.renew_deadline
