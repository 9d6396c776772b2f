"""``make cluster-up`` / ``make cluster-down`` as a user runs them.

This module runs last in the session (see conftest.py): it stops the session's
cluster, brings one up with make, checks the nodes with the built kubectl, stops
it with make and checks that no process, network namespace, veth or bridge of it
is left. A cluster the developer had started before the session (``make cluster-up``)
is started again at the end, as it was found; one the session started stays down.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import psutil
import pytest
from localkube import cluster as clusters
from localkube import fixtures, layout, network, processes

import leftovers

pytestmark = pytest.mark.cluster


def make(target: str, outlives_session: bool = False) -> subprocess.CompletedProcess[str]:
    """``make target``; what it starts is the session's (and checked at its end) unless
    it ``outlives_session`` on purpose."""
    env = dict(os.environ)
    if outlives_session:
        env.pop(leftovers.MARKER, None)
    result = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=layout.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_make_cluster_up_gives_ready_nodes_and_cluster_down_leaves_nothing(
    cluster: clusters.Cluster, request: pytest.FixtureRequest
) -> None:
    paths = layout.Layout.default()
    developers = fixtures.started_by_session(request.config) is None
    make("cluster-down")

    started = time.monotonic()
    up = make("cluster-up")
    elapsed = time.monotonic() - started
    assert "export KUBECONFIG=" in up.stdout
    print(f"make cluster-up took {elapsed:.1f} s")

    listing = subprocess.run(
        [str(paths.kubectl), "--kubeconfig", str(paths.kubeconfig), "get", "nodes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    nodes = json.loads(listing.stdout)["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    assert ready == set(clusters.NODES), nodes

    handles, _ = processes.load(paths.state)
    pids = [h.pid for h in handles]
    assert {h.name for h in handles} >= {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "node-agent",
    }
    make("cluster-down")
    alive = [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"processes still running after cluster-down: {alive}"
    assert processes.belonging_to(paths.root) == []
    assert network.leftovers() == []
    assert not paths.state.exists()
    if developers:
        make("cluster-up", outlives_session=True)  # leave the developer's cluster as found
