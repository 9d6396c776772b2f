"""The operator's liveness endpoint: ``GET /healthz`` on the event loop.

Served the whole time the process runs, by a leader and by a standby alike (kopf's own
endpoint runs only while kopf does, i.e. only on the leader). An answer proves the event
loop turns; the body says which role this replica has.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


async def serve(port: int, role: Callable[[], str]) -> web.AppRunner:
    """Serve ``/healthz`` on ``port`` (all addresses); ``cleanup()`` the runner to stop."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text=role() + "\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
