"""The operator as a local process against the localkube control plane.

Used by the developer loop (``make cluster-up`` starts it, ``make cluster-down`` stops
it: ``python tests/operator/localoperator.py start|stop``) and by the operator tests
(a fixture starts one per session). Both run the working tree's code. Job pods start
in the repository root, so the examples' relative paths resolve as with ``kubemr run``.

The two never act on the same namespaces: the tests' operator watches ``test-*`` (the
test namespaces) but ``test-chart-*`` (the chart's operator) and ``test-own-*`` (tests
that start operators of their own), the developer's every other namespace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "cluster")]

from localkube import apiclient, deadlines, layout  # noqa: E402
from localkube import cluster as clusters  # noqa: E402

CRD_FILE = ROOT / "crds" / "mapreducejob.yaml"
TEST_NAMESPACES = "test-*,!test-chart-*,!test-own-*"
OWN_NAMESPACES = "test-own-"
"""Prefix of namespaces no shared operator watches: a test starts its own there."""
DEV_NAMESPACES = "*,!test-*"
CRD_ESTABLISHED = deadlines.Deadline("crd_established", 30.0)
OPERATOR_READY = deadlines.Deadline("operator_ready", 60.0)
OPERATOR_EXIT = deadlines.Deadline("operator_exit", 15.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_crd(client: apiclient.ApiClient) -> str:
    """Create or update the MapReduceJob CRD and wait until it is established."""
    body = yaml.safe_load(CRD_FILE.read_text())
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    name = str(body["metadata"]["name"])
    try:
        current = client.get(f"{path}/{name}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        client.replace(f"{path}/{name}", body)
    except apiclient.ApiError as error:
        if not apiclient.is_not_found(error):
            raise
        client.create(path, body)

    def established() -> bool | None:
        conditions = client.get(f"{path}/{name}").get("status", {}).get("conditions", [])
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return True if ok else None

    deadlines.poll(CRD_ESTABLISHED, established, f"CRD {name} established")
    return name


class LocalOperator:
    """``python -m kubemr_operator`` as a child process, logging to a file."""

    def __init__(
        self,
        paths: layout.Layout,
        namespaces: str,
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.paths = paths
        self.namespaces = namespaces
        self.log = log
        self.env = dict(env or {})
        """Variables over the defaults below (e.g. leader election instead of standalone)."""
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.paths.kubeconfig),
            "KUBEMR_OPERATOR_NAMESPACES": self.namespaces,
            "KUBEMR_OPERATOR_STANDALONE": "true",
            "KUBEMR_OPERATOR_POD_WORKING_DIR": str(ROOT),
            "KUBEMR_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "KUBEMR_OPERATOR_LIVENESS_PORT": "0",
            "KUBEMR_OPERATOR_RECONCILE_INTERVAL": "1",
            **self.env,
        }

    def start(self) -> None:
        """Start the operator and wait until it serves its metrics."""
        self.spawn()
        deadlines.poll(
            OPERATOR_READY, self._ready, f"the operator's metrics on {self.metrics_port}"
        )

    def spawn(self) -> None:
        """Start the operator and return at once (it is still importing and logging in)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kubemr_operator"],
                cwd=ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _ready(self) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the operator exited with {self.process.returncode}:\n" + self.log_tail()
            )
        try:
            with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=1):
                return True
        except OSError:
            return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(OPERATOR_EXIT.seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def metrics(self) -> str:
        """The operator's /metrics page (Prometheus text)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def kill(self) -> None:
        """SIGKILL: the operator dies at an arbitrary moment, as a crashed pod would."""
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _pid_file(paths: layout.Layout) -> Path:
    return paths.root / "operator.pid"


def _dev_start() -> None:
    paths = layout.Layout.default()
    _dev_stop()
    cluster = clusters.running(paths)
    if cluster is None:
        raise SystemExit("no cluster is running: `make cluster-up` starts one")
    install_crd(cluster.client())
    operator = LocalOperator(paths, DEV_NAMESPACES, paths.logs / "operator.log")
    operator.start()
    assert operator.process is not None
    _pid_file(paths).write_text(str(operator.process.pid))
    print(
        f"operator running (pid {operator.process.pid}), watching {DEV_NAMESPACES!r}; "
        f"log: {operator.log}"
    )


def _dev_stop() -> None:
    pid_file = _pid_file(layout.Layout.default())
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + OPERATOR_EXIT.seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print(f"operator stopped (pid {pid})")


if __name__ == "__main__":
    {"start": _dev_start, "stop": _dev_stop}[sys.argv[1]]()
