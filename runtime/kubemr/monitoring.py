"""The HTTP side of a kubemr process: ``/metrics``, ``/status``, ``/healthz`` and the page.

Every process (master and workers) serves its Prometheus metrics at ``/metrics`` (its own
registry, :mod:`kubemr.metrics`). The master also serves its progress as JSON at
``/status``; the operator reads it to write the MapReduceJob's status (it knows the
runtime only through this document and the job spec). ``/healthz`` answers 200 while the
process serves. The master also serves its status page at ``/`` (:mod:`kubemr.statuspage`,
from the :class:`~kubemr.report.JobReport` it projects on request), the page's live part at
``/fragment``, the report as JSON at ``/report`` and the page's two static files under
``/static/``; ``kubemr ui`` serves the same page from a kept report. The server runs on the
process's event loop beside gRPC and costs nothing while nobody asks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kubemr import address as addresses
from kubemr import contract, statuspage
from kubemr.metrics import RuntimeMetrics
from kubemr.report import JobReport

if TYPE_CHECKING:
    from aiohttp import web

StatusSource = Callable[[], contract.StatusReport]
ReportSource = Callable[[], JobReport]
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format every Prometheus since 2.0 reads (what we serve)."""
log = logging.getLogger("kubemr.monitoring")
REPORT_SHARE = 0.1
"""At most this share of the process's time goes into projecting the status page's report
(a 10,000 x 100-task job's costs about half a second): a report is reused until its cost
divided by this share has passed. Small jobs' reports are fresh on every request."""


class ReportCache:
    """A report source that recomputes at most so often that projecting takes no more
    than ``share`` of the time (see :data:`REPORT_SHARE`). The cost is the CPU time of the
    projecting thread (the event loop's), so a busy machine does not make it look dear."""

    def __init__(
        self,
        source: ReportSource,
        share: float = REPORT_SHARE,
        clock: Callable[[], float] = time.monotonic,
        cost: Callable[[], float] = time.thread_time,
    ) -> None:
        self.source = source
        self.share = share
        self.clock = clock
        self.cost = cost
        self._last: JobReport | None = None
        self._until = 0.0

    def __call__(self) -> JobReport:
        now = self.clock()
        if self._last is None or now >= self._until:
            spent = self.cost()
            self._last = self.source()
            self._until = now + (self.cost() - spent) / self.share
        return self._last


class Served(Protocol):
    """The settings of a process that serves monitoring (master or worker config)."""

    @property
    def bind(self) -> str: ...
    @property
    def advertise_host(self) -> str: ...
    @property
    def monitoring_port(self) -> int | None: ...
    @property
    def monitoring_file(self) -> Path | None: ...


async def start(
    config: Served,
    metrics: RuntimeMetrics,
    status: StatusSource | None = None,
    report: ReportSource | None = None,
) -> MonitoringServer | None:
    """Start the process's monitoring server if ``config`` asks for one; write its
    ``host:port`` to ``config.monitoring_file`` if set."""
    if config.monitoring_port is None:
        return None
    server = MonitoringServer(config.bind, config.monitoring_port, status, metrics, report)
    port = await server.start()
    log.info("metrics and health on port %d", port)
    if config.monitoring_file is not None:
        tmp = Path(f"{config.monitoring_file}.tmp")
        tmp.write_text(addresses.join(config.advertise_host, port), encoding="utf-8")
        tmp.replace(config.monitoring_file)
    return server


async def finish(
    server: MonitoringServer | None, metrics: RuntimeMetrics, snapshot: Path | None
) -> None:
    """Write the final metrics to ``snapshot`` (if set) and stop the server."""
    if snapshot is not None:
        tmp = Path(f"{snapshot}.tmp")
        tmp.write_bytes(metrics.exposition())
        tmp.replace(snapshot)
    if server is not None:
        await server.stop()


class MonitoringServer:
    """An aiohttp server on ``bind:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        bind: str,
        port: int,
        status: StatusSource | None = None,
        metrics: RuntimeMetrics | None = None,
        report: ReportSource | None = None,
    ) -> None:
        self.bind = bind
        self.port = port
        self._status = status
        self._metrics = metrics
        self._report = ReportCache(report) if report is not None else None
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Serve; return the port bound."""
        from aiohttp import web  # noqa: PLC0415 (a process that serves nothing skips the import)

        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        if self._status is not None:
            app.router.add_get(contract.STATUS_PATH, self._status_page)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._metrics_page)
        if self._report is not None:
            app.router.add_get("/", self._page)
            app.router.add_get("/fragment", self._fragment)
            app.router.add_get("/report", self._report_json)
            app.router.add_get("/static/{name}", self._asset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, addresses.listen_host(self.bind), self.port)
        await site.start()
        for address in self._runner.addresses:
            return int(address[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web  # noqa: PLC0415

        del request
        return web.Response(text="ok\n")

    async def _status_page(self, request: web.Request) -> web.Response:
        del request
        assert self._status is not None
        body = json.dumps(self._status().document(), sort_keys=True)
        from aiohttp import web  # noqa: PLC0415

        return web.Response(text=body, content_type="application/json")

    async def _metrics_page(self, request: web.Request) -> web.Response:
        del request
        assert self._metrics is not None
        from aiohttp import web  # noqa: PLC0415

        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def _page(self, request: web.Request) -> web.Response:
        del request
        assert self._report is not None
        return _html(statuspage.render_page(self._report()))

    async def _fragment(self, request: web.Request) -> web.Response:
        del request
        assert self._report is not None
        return _html(statuspage.render_fragment(self._report()))

    async def _report_json(self, request: web.Request) -> web.Response:
        del request
        assert self._report is not None
        from aiohttp import web  # noqa: PLC0415

        body = json.dumps(self._report().dump())
        return web.Response(text=body, content_type="application/json")

    async def _asset(self, request: web.Request) -> web.Response:
        from aiohttp import web  # noqa: PLC0415

        name = request.match_info["name"]
        if name not in statuspage.ASSETS:
            raise web.HTTPNotFound()
        body = (resources.files("kubemr") / "static" / name).read_bytes()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        response = web.Response(body=body, content_type=kind, charset="utf-8")
        response.headers["Cache-Control"] = "no-cache"
        return response


def _html(text: str) -> web.Response:
    from aiohttp import web  # noqa: PLC0415

    response = web.Response(text=text, content_type="text/html")
    response.headers["Content-Security-Policy"] = statuspage.CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response
