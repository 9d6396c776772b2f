"""``kubemr-operator`` (or ``python -m kubemr_operator``): run the operator.

The only place that reads the environment (``KUBEMR_OPERATOR_*``, see
:mod:`kubemr_operator.settings`) and the only place that exits. It serves the operator's
metrics and liveness, then, unless standalone, stands by as a candidate for the leader
Lease (:mod:`kubemr_operator.elector`) and runs kopf with the handlers of
:mod:`kubemr_operator.handlers` only while it holds it, watching the configured
namespaces or the whole cluster.

A leader whose renewals are overdue exits at once with :data:`EXIT_LEADERSHIP_LOST` (as
client-go's controllers do): kopf cannot pause every handler and in-flight request
atomically, its graceful stop can go on acting for seconds, and a restarted process is a
clean candidate. The operator is level-triggered, so exiting loses nothing. On SIGTERM a
leader stops kopf gracefully, then releases the lease so that a standby takes over at its
next look.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import kopf
from kubemr.contract import GROUP
from prometheus_client import start_http_server

from kubemr_operator import discovery, elector, handlers, liveness
from kubemr_operator.metrics import OperatorMetrics
from kubemr_operator.settings import Settings, from_env

EXIT_LEADERSHIP_LOST = 3
"""Exit status of a leader that could not renew its lease in time (or lost it)."""

log = logging.getLogger("kubemr.operator")


def main() -> None:
    try:
        settings = from_env(os.environ)
    except ValueError as error:
        sys.exit(f"kubemr-operator: {error}")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s operator %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # lightkube's per-request lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Which watch-streams run (per resource and namespace), start, stop, pause or hang on
    # stopping: kopf says so at DEBUG only, a few lines per namespace. Without them an
    # operator that does not watch a namespace looks merely idle.
    for name in ("kopf._cogs.clients.watching", "kopf._core.reactor.orchestration"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    metrics = OperatorMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    runtime = handlers.Runtime(settings, metrics)
    try:
        asyncio.run(_serve(settings, runtime))
    except KeyboardInterrupt:
        sys.exit(130)
    except asyncio.CancelledError:
        pass  # kopf's stop by cancellation (kopf.run ignores it the same way)


async def _serve(settings: Settings, runtime: handlers.Runtime) -> None:
    role = "standalone" if settings.standalone else "standby"
    health = (
        await liveness.serve(settings.liveness_port, lambda: role)
        if settings.liveness_port
        else None
    )
    try:
        if settings.standalone:
            runtime.metrics.leader.set(1)
            await _kopf(settings, runtime, stop=None)
            return
        candidate = elector.Elector(
            runtime.client,
            settings.election,
            elector.candidate_identity(settings.election.identity),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if not await candidate.acquire(stop):
            return
        role = "leader"
        runtime.may_act = candidate.leading
        runtime.metrics.leader.set(1)
        keeper = asyncio.create_task(candidate.keep(_lost), name="lease keeper")
        keeper.add_done_callback(_keeper_done)
        try:
            await _kopf(settings, runtime, stop=stop)
        finally:
            keeper.cancel()
            runtime.metrics.leader.set(0)
            await candidate.release()
    finally:
        await runtime.close()
        if health is not None:
            await health.cleanup()


async def _kopf(settings: Settings, runtime: handlers.Runtime, stop: asyncio.Event | None) -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, runtime)
    discovery.install(served_groups={GROUP})
    await kopf.operator(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=True,  # the Lease decides who acts, not kopf's peering
        stop_flag=stop,
    )


def _keeper_done(keeper: asyncio.Task[None]) -> None:
    if not keeper.cancelled() and (error := keeper.exception()) is not None:
        _lost(f"the lease keeper failed: {error!r}")


def _lost(reason: str) -> None:
    log.error("leadership lost: %s; exiting at once so that nothing more is reconciled", reason)
    logging.shutdown()
    os._exit(EXIT_LEADERSHIP_LOST)


if __name__ == "__main__":
    main()
