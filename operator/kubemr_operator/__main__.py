"""``kubemr-operator`` (or ``python -m kubemr_operator``): run the operator.

The only place that reads the environment (``KUBEMR_OPERATOR_*``, see
:mod:`kubemr_operator.settings`) and the only place that exits. It serves the operator's
metrics, then runs kopf with the handlers of :mod:`kubemr_operator.handlers`, watching the
configured namespaces or the whole cluster.
"""

from __future__ import annotations

import logging
import os
import sys

import kopf
from prometheus_client import start_http_server

from kubemr_operator import handlers
from kubemr_operator.metrics import OperatorMetrics
from kubemr_operator.settings import from_env


def main() -> None:
    settings = from_env(os.environ)
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
    registry = kopf.OperatorRegistry()
    handlers.register(registry, handlers.Runtime(settings, metrics))
    liveness = (
        f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    )
    try:
        kopf.run(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
            peering_name=None if settings.standalone else settings.peering,
            liveness_endpoint=liveness,
        )
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
