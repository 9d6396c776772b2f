"""The leader elector's I/O: reads and writes the Lease with the operator's client.

Every decision is :mod:`kubemr_operator.election`'s; this module only looks at the
Lease, writes what the verdict asks (conditional on the version it read), and keeps the
time. :meth:`Elector.acquire` returns once this replica holds the lease;
:meth:`Elector.keep` renews it and calls back the moment renewals are overdue;
:meth:`Elector.release` gives it up on a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx2
import lightkube
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from kubemr_operator import election
from kubemr_operator.election import Action, LeaseRecord
from kubemr_operator.settings import LeaderElection

log = logging.getLogger("kubemr.operator.election")

_TRANSIENT = (lightkube.ApiError, httpx2.HTTPError, OSError, asyncio.TimeoutError)
"""What a look at the lease may fail with and be retried after: the API server
unreachable, slow or answering an error (a 409 is not an error: it is a lost race)."""


def candidate_identity(name: str) -> str:
    """``name`` (default: the host name, in a pod the pod's name) and a random suffix: a
    restarted process is a new candidate, never mistaken for the holder it replaced."""
    return f"{name or socket.gethostname()}_{secrets.token_hex(4)}"


def _record(lease: Lease) -> LeaseRecord:
    spec = lease.spec or LeaseSpec()
    return LeaseRecord(
        holder=spec.holderIdentity or "",
        duration=float(spec.leaseDurationSeconds or 0),
        transitions=spec.leaseTransitions or 0,
        acquired=spec.acquireTime,
        renewed=spec.renewTime,
        version=(lease.metadata.resourceVersion if lease.metadata else None) or "",
    )


def _lease(name: str, namespace: str, record: LeaseRecord) -> Lease:
    return Lease(
        metadata=ObjectMeta(name=name, namespace=namespace, resourceVersion=record.version or None),
        spec=LeaseSpec(
            holderIdentity=record.holder,
            leaseDurationSeconds=max(1, math.ceil(record.duration)),
            leaseTransitions=record.transitions,
            acquireTime=record.acquired,
            renewTime=record.renewed,
        ),
    )


class Elector:
    """One candidate for the lease ``timing.lease_name``."""

    def __init__(
        self, client: lightkube.AsyncClient, timing: LeaderElection, identity: str
    ) -> None:
        self.client = client
        self.timing = timing
        self.identity = identity
        self.namespace = timing.lease_namespace or client.namespace
        self._memory = election.Memory()
        self._held: LeaseRecord | None = None
        """The record this candidate last wrote as holder (with the version it got)."""
        self._renewed_at: float | None = None
        """Monotonic start of the last successful write as holder."""
        self._last_holder: str | None = None

    def leading(self) -> bool:
        """Whether this replica holds the lease and its renewals are not overdue."""
        return self._renewed_at is not None and election.still_leading(
            self._renewed_at, time.monotonic(), self.timing
        )

    @property
    def renewed_at(self) -> float | None:
        return self._renewed_at

    async def _read(self) -> LeaseRecord | None:
        try:
            lease = await self.client.get(Lease, self.timing.lease_name, namespace=self.namespace)
        except lightkube.ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return _record(lease)

    async def _write(self, action: Action, record: LeaseRecord) -> LeaseRecord | None:
        """Write ``record``; None if another candidate wrote first (409)."""
        lease = _lease(self.timing.lease_name, self.namespace, record)
        try:
            if action is Action.CREATE:
                written = await self.client.create(lease)
            else:
                written = await self.client.replace(lease)
        except lightkube.ApiError as error:
            if error.status.code == 409:
                return None
            raise
        return _record(written)

    async def _look(self) -> election.Verdict:
        """One look: read the lease, judge, and write if the verdict asks for it. The
        verdict's action is STAND_BY unless this candidate holds the lease afterwards."""
        started = time.monotonic()
        lease = await self._read()
        verdict = election.judge(self.identity, lease, self._memory, started, self.timing)
        self._memory = verdict.memory
        if verdict.action is Action.STAND_BY:
            self._note_holder(lease)
            return verdict
        record = election.claim(
            self.identity, verdict.action, lease, datetime.now(UTC), self.timing
        )
        written = await self._write(verdict.action, record)
        if written is None:
            return election.Verdict(Action.STAND_BY, self._memory, self.timing.retry_period)
        if verdict.action is not Action.RENEW:
            previous = lease.holder if lease is not None and lease.holder else "nobody"
            log.info(
                "leading: %s took lease %s/%s (%s, held before by %s, last renewed %s)",
                self.identity,
                self.namespace,
                self.timing.lease_name,
                verdict.action.value,
                previous,
                lease.renewed.isoformat() if lease is not None and lease.renewed else "never",
            )
        self._held = written
        self._renewed_at = started
        self._memory = election.Memory(written, started)
        return verdict

    def _note_holder(self, lease: LeaseRecord | None) -> None:
        holder = lease.holder if lease is not None else None
        if holder != self._last_holder:
            self._last_holder = holder
            log.info(
                "standing by: lease %s/%s is held by %s",
                self.namespace,
                self.timing.lease_name,
                holder,
            )

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Look at the lease until this candidate holds it (True) or ``stop`` is set
        (False). API errors are logged and retried after ``retry_period``."""
        log.info(
            "candidate %s for lease %s/%s", self.identity, self.namespace, self.timing.lease_name
        )
        while not stop.is_set():
            wait = self.timing.retry_period
            try:
                verdict = await asyncio.wait_for(self._look(), self.timing.renew_deadline)
            except _TRANSIENT as error:
                log.warning("cannot look at lease %s: %s", self.timing.lease_name, error)
            else:
                if verdict.action is not Action.STAND_BY:
                    return True
                wait = verdict.look_again_in
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        return False

    async def keep(self, lost: Callable[[str], None]) -> None:
        """Renew every ``retry_period`` while leading; call ``lost`` with the reason the
        moment this replica may no longer act: another holder in the lease, or no
        successful renewal for ``renew_deadline`` seconds. A renewal still in flight at
        the deadline is abandoned, not awaited: a request stuck on a dead network may not
        even stop when cancelled (seen on the local cluster: a cancelled TLS request
        finished 36 s later), and the deadline must not wait for it."""
        while True:
            assert self._renewed_at is not None, "keep() before acquire()"
            deadline = self._renewed_at + self.timing.renew_deadline
            await asyncio.sleep(
                min(self.timing.retry_period, max(0.0, deadline - time.monotonic()))
            )
            reason = await self._renew(deadline)
            if reason:
                self._renewed_at = None
                lost(reason)
                return

    async def _renew(self, deadline: float) -> str:
        """One renewal before ``deadline``; why leadership is lost, or empty."""
        overdue = f"no renewal succeeded for {self.timing.renew_deadline} s"
        attempt = asyncio.ensure_future(self._look())
        done, _ = await asyncio.wait({attempt}, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            attempt.cancel()
            return overdue + " (the last attempt is still waiting for the API server)"
        error = attempt.exception()
        if error is not None:
            if not isinstance(error, _TRANSIENT):
                raise error
            log.warning("cannot renew lease %s: %s", self.timing.lease_name, error)
            return "" if self.leading() else f"{overdue} (last error: {error!r})"
        verdict = attempt.result()
        holder = verdict.memory.record.holder if verdict.memory.record else ""
        if verdict.action is not Action.RENEW and holder != self.identity:
            return f"the lease is now held by {holder or 'nobody'}"
        if verdict.action is not Action.RENEW and not self.leading():
            return overdue  # still named, but every renewal lost a race (409) until now
        return ""

    async def release(self) -> None:
        """Give the lease up (a graceful stop): a standby takes over at its next look."""
        held, self._held = self._held, None
        self._renewed_at = None
        if held is None:
            return
        try:
            await asyncio.wait_for(
                self._write(Action.RENEW, election.released(held, datetime.now(UTC))),
                self.timing.retry_period,
            )
        except _TRANSIENT as error:
            log.warning("cannot release lease %s: %s", self.timing.lease_name, error)
        else:
            log.info("released lease %s/%s", self.namespace, self.timing.lease_name)
