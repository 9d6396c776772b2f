"""Bringing a whole local cluster up and down, and finding a running one.

``up`` builds the binaries if their pins changed, starts the control plane and
the node agent detached (so ``make cluster-up`` returns with everything
running), waits until every Node is Ready and records the processes in
``state.json``. ``down`` stops them in reverse order and then checks that no
process, network namespace, veth or bridge of the cluster is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator

from localkube import apiclient, build, controlplane, deadlines, layout, network, processes

NODES = tuple(os.environ.get("LOCALKUBE_NODES", "localkube-node-1,localkube-node-2").split(","))


class LeftBehindError(RuntimeError):
    """``down`` found processes or network devices of the cluster still there."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A running cluster as recorded in its state file."""

    paths: layout.Layout
    server: str
    handles: tuple[processes.Handle, ...]

    def client(self) -> apiclient.ApiClient:
        return apiclient.ApiClient(controlplane.credentials(self.paths, self.server))

    def alive(self) -> bool:
        return all(h.alive() for h in self.handles)


@contextlib.contextmanager
def locked(paths: layout.Layout) -> Iterator[None]:
    """Serialise up/down of one cluster directory (several pytest runs, make)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def running(paths: layout.Layout) -> Cluster | None:
    """The cluster recorded in ``state.json`` if all its processes are alive and it is ready."""
    if not paths.state.exists():
        return None
    handles, extra = processes.load(paths.state)
    cluster = Cluster(paths, str(extra["server"]), tuple(handles))
    if not cluster.alive():
        return None
    try:
        cluster.client().get_text("/readyz")
    except (OSError, apiclient.ApiError):
        return None
    return cluster


def _nodes_ready(client: apiclient.ApiClient) -> bool | None:
    nodes = {n["metadata"]["name"]: n for n in client.items("/api/v1/nodes")}
    for name in NODES:
        node = nodes.get(name)
        if node is None:
            return None
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        if conditions.get("Ready") != "True":
            return None
        if any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints", [])):
            return None
    return True


def up(paths: layout.Layout | None = None, quiet: bool = False) -> Cluster:
    """Start a cluster (or return the one already running in ``paths``)."""
    paths = paths or layout.Layout.default()
    with locked(paths):
        existing = running(paths)
        if existing is not None:
            return existing
        _down(paths)
        started = time.monotonic()
        build.build(paths)
        built = time.monotonic()
        try:
            network.ensure_tools()
            network.ensure_bridge()
            shutil.rmtree(paths.etcd_data, ignore_errors=True)
            shutil.rmtree(paths.pods, ignore_errors=True)
            shutil.rmtree(paths.root / "volumes", ignore_errors=True)
            ports = controlplane.Ports.pick()
            handles = controlplane.start(paths, ports)
            server = f"https://127.0.0.1:{ports.apiserver}"
            client = apiclient.ApiClient(controlplane.credentials(paths, server))
            try:
                agent_log = paths.component_log("node-agent")
                agent_log.parent.mkdir(parents=True, exist_ok=True)
                agent = processes.start(
                    "node-agent",
                    [
                        sys.executable,
                        "-m",
                        "localkube",
                        "agent",
                        "--server",
                        server,
                        "--nodes",
                        ",".join(NODES),
                    ],
                    agent_log,
                    paths.root,
                    environment={
                        **os.environ,
                        "PYTHONPATH": str(layout.GO_MODULE),
                        "LOCALKUBE_DIR": str(paths.root),
                    },
                )
                handles.append(agent)

                def ready() -> bool | None:
                    if not agent.alive():
                        raise controlplane.ComponentExitedError(
                            f"node agent exited; log {agent_log}:\n"
                            + agent_log.read_text(errors="replace")[-3000:]
                        )
                    return _nodes_ready(client)

                deadlines.poll(deadlines.NODE_READY, ready, f"nodes {', '.join(NODES)} to be Ready")
                deadlines.poll(
                    deadlines.NAMESPACE_READY,
                    lambda: (
                        True
                        if client.get("/api/v1/namespaces/default/serviceaccounts/default")
                        else None
                    ),
                    "the default service account",
                )
            except BaseException:
                for handle in reversed(handles):
                    processes.stop(handle)
                network.sweep()
                raise
            finally:
                client.close()
        except BaseException:
            # Interrupted or failed anywhere in start-up: leave nothing behind.
            _down(paths)
            raise
        processes.save(
            paths.state,
            handles,
            {
                "server": server,
                "ports": dataclasses.asdict(ports),
                "build_seconds": round(built - started, 1),
                "start_seconds": round(time.monotonic() - built, 1),
            },
        )
        cluster = Cluster(paths, server, tuple(handles))
        if not quiet:
            print(
                f"localkube: cluster up in {time.monotonic() - started:.1f} s "
                f"(Kubernetes {build.kubernetes_version()}, API server {server})\n"
                f"  export KUBECONFIG={paths.kubeconfig}\n"
                f"  {paths.kubectl} get nodes\n"
                f"  logs: {paths.logs}/, pods: {paths.pods}/\n"
                f"  stop with: make cluster-down",
                flush=True,
            )
        return cluster


def _down(paths: layout.Layout) -> list[str]:
    stopped = []
    if paths.state.exists():
        handles, _ = processes.load(paths.state)
        for handle in reversed(handles):
            if handle.alive():
                processes.stop(handle, grace=30.0 if handle.name == "node-agent" else 10.0)
                stopped.append(handle.name)
        paths.state.unlink()
    stopped += [f"killed {p}" for p in processes.sweep(paths.root)]
    stopped += network.sweep()
    return stopped


def down(paths: layout.Layout | None = None) -> list[str]:
    """Stop everything of the cluster and check that nothing is left; return what stopped."""
    paths = paths or layout.Layout.default()
    with locked(paths):
        stopped = _down(paths)
        left = [
            f"process {p.pid} {' '.join(p.cmdline())[:100]}"
            for p in processes.belonging_to(paths.root)
        ]
        left += network.leftovers()
        if left:
            raise LeftBehindError("cluster-down left behind: " + "; ".join(left))
        return stopped


def status(paths: layout.Layout | None = None) -> str:
    paths = paths or layout.Layout.default()
    cluster = running(paths)
    if cluster is None:
        return "localkube: no cluster running in " + str(paths.root)
    lines = [f"localkube: cluster running, API server {cluster.server}"]
    for handle in cluster.handles:
        process = handle.process()
        rss = process.memory_info().rss / 2**20 if process else 0.0
        lines.append(f"  {handle.name:<24} pid {handle.pid:<8} rss {rss:7.1f} MiB")
    return "\n".join(lines)
