"""The one kubelet endpoint the node agent serves: container logs, for ``kubectl logs``.

The API server proxies ``kubectl logs`` to ``https://<node InternalIP>:10250/
containerLogs/<ns>/<pod>/<container>``. The agent answers from the log files it
keeps (``?previous=true`` gives the previous restart, ``?tailLines=N`` the last N
lines; ``follow`` streams until the container's log stops growing and its
process has exited). exec, attach and port-forward are not served.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

PORT = 10250


def log_files(pods_dir: Path, namespace: str, pod: str, container: str) -> list[Path]:
    """The container's log files, oldest restart first (the newest pod of that name)."""
    candidates = sorted(pods_dir.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        return []
    logs = candidates[-1] / "logs" / container
    return sorted(logs.glob("*.log"), key=lambda p: int(p.stem)) if logs.is_dir() else []


class _Handler(http.server.BaseHTTPRequestHandler):
    pods_dir: Path
    running: Callable[[str, str, str], bool]

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "localkube serves only /containerLogs")
            return
        _, namespace, pod, container = parts
        query = urllib.parse.parse_qs(url.query)
        files = log_files(self.pods_dir, namespace, pod, container)
        previous = query.get("previous", ["false"])[0] == "true"
        files = files[-2:-1] if previous else files[-1:]
        if not files:
            self.send_error(404, f"no log of container {container} in pod {namespace}/{pod}")
            return
        text = files[0].read_bytes()
        if "tailLines" in query:
            lines = text.splitlines(keepends=True)
            text = b"".join(lines[-int(query["tailLines"][0]) :])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(text)
        if query.get("follow", ["false"])[0] != "true":
            return
        offset = files[0].stat().st_size
        while self.running(namespace, pod, container) or files[0].stat().st_size > offset:
            size = files[0].stat().st_size
            if size > offset:
                with files[0].open("rb") as source:
                    source.seek(offset)
                    self.wfile.write(source.read(size - offset))
                    self.wfile.flush()
                offset = size
            time.sleep(0.2)


def serve(
    address: str,
    cert: Path,
    key: Path,
    pods_dir: Path,
    running: Callable[[str, str, str], bool],
) -> http.server.ThreadingHTTPServer:
    """Start the HTTPS server in a daemon thread and return it."""
    handler = type("Handler", (_Handler,), {"pods_dir": pods_dir, "running": staticmethod(running)})
    server = http.server.ThreadingHTTPServer((address, PORT), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet api", daemon=True).start()
    return server
