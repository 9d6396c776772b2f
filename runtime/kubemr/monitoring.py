"""The HTTP side of a kubemr process: ``/status`` and ``/healthz``.

The master serves its progress as JSON at ``/status``; the operator reads it to write
the MapReduceJob's status (it knows the runtime only through this document and the job
spec). ``/healthz`` answers 200 while the process serves. The server runs on the
process's event loop beside gRPC and costs nothing while nobody asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

StatusSource = Callable[[], dict[str, Any]]


class MonitoringServer:
    """An aiohttp server on ``bind:port`` (port 0 picks a free one)."""

    def __init__(self, bind: str, port: int, status: StatusSource | None = None) -> None:
        self.bind = bind
        self.port = port
        self._status = status
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Serve; return the port bound."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        if self._status is not None:
            app.router.add_get("/status", self._status_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        for address in self._runner.addresses:
            return int(address[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        del request
        return web.Response(text="ok\n")

    async def _status_page(self, request: web.Request) -> web.Response:
        del request
        assert self._status is not None
        body = json.dumps(self._status(), sort_keys=True)
        return web.Response(text=body, content_type="application/json")
