"""Readiness probes: httpGet, tcpSocket and exec, run by the node agent.

The host reaches every pod IP over the bridge, so httpGet and tcpSocket probes
connect from the agent itself; exec probes run the command inside the pod's
network namespace with the container's environment. Only readiness is probed
(liveness and startup probes are not run).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from typing import Any


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']} declares no port named {port!r}")


def succeeds(
    probe: dict[str, Any],
    container: dict[str, Any],
    address: str,
    netns: str,
    env: Mapping[str, str],
) -> bool:
    """Run ``probe`` once; True when it passes."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            action = probe["httpGet"]
            host = action.get("host") or address
            port = _port(container, action["port"])
            connection: http.client.HTTPConnection
            if action.get("scheme", "HTTP").upper() == "HTTPS":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify either
                connection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=context
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in action.get("httpHeaders", [])}
                connection.request("GET", action.get("path", "/"), headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
        if "tcpSocket" in probe:
            action = probe["tcpSocket"]
            target = (action.get("host") or address, _port(container, action["port"]))
            with contextlib.closing(socket.create_connection(target, timeout=timeout)):
                return True
        if "exec" in probe:
            command = ["ip", "netns", "exec", netns, *probe["exec"]["command"]]
            result = subprocess.run(
                command, env=dict(env), capture_output=True, timeout=timeout, check=False
            )
            return result.returncode == 0
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException):
        return False
    return True
