"""kubemr on a real kind cluster: its nodes and the chart's operator pod (the examples run
end to end in test_kind_examples.py).

The cluster is the one of ``make kind-up`` (tests/kind/kindcluster, the same code): the
node image built offline from source, the kubemr image built from images/Dockerfile and
loaded into the nodes, charts/kubemr installed with helm. A cluster that is already up
is used and left running; otherwise the fixture creates it and deletes it at the end
(stopping our dockerd if it started one). ``make test-kind`` builds everything first:
a cold build takes far longer than a test may.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kindcluster import cluster, images
from kindjobs import kubectl
from localkube import deadlines

pytestmark = pytest.mark.kind

NODES_READY = deadlines.Deadline("kind_nodes_ready", 180.0)
OPERATOR_RUNNING = deadlines.Deadline("kind_operator_running", 180.0)


def ready_nodes(tools: cluster.Tools) -> list[str]:
    nodes = json.loads(kubectl(tools, "get", "nodes", "-o", "json"))["items"]
    return [
        node["metadata"]["name"]
        for node in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    ]


def test_three_nodes_ready(kind: cluster.Tools) -> None:
    def three() -> list[str] | None:
        ready = ready_nodes(kind)
        return ready if len(ready) == 3 else None

    nodes = deadlines.poll(
        NODES_READY,
        three,
        "three Ready nodes",
        interval=1.0,
        describe=lambda: kubectl(kind, "get", "nodes", "-o", "wide"),
    )
    assert sorted(nodes) == ["kubemr-control-plane", "kubemr-worker", "kubemr-worker2"]


def operator_pod(tools: cluster.Tools) -> dict[str, Any] | None:
    pods = json.loads(kubectl(tools, "-n", cluster.NAMESPACE, "get", "pods", "-o", "json"))["items"]
    running = [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
    ]
    return running[0] if len(running) == 1 else None


def test_operator_runs_built_image_as_65532_on_read_only_root(kind: cluster.Tools) -> None:
    pod = deadlines.poll(
        OPERATOR_RUNNING,
        lambda: operator_pod(kind),
        "the chart's operator pod Running and ready",
        interval=1.0,
        describe=lambda: kubectl(kind, "-n", cluster.NAMESPACE, "get", "pods", "-o", "wide"),
    )
    name = str(pod["metadata"]["name"])
    status = pod["status"]["containerStatuses"][0]
    built = images.image_id(kind.engine, cluster.chart_image())
    assert built is not None
    assert status["image"].endswith(cluster.chart_image())
    # The pod's imageID is the digest containerd gave the loaded archive; the image it
    # names on the pod's node must be the one built here (same config digest).
    node_images = json.loads(
        kind.engine.docker("exec", pod["spec"]["nodeName"], "crictl", "images", "-o", "json")
    )["images"]
    running = [
        i["id"]
        for i in node_images
        if status["imageID"] in i.get("repoDigests", []) or status["imageID"] == i["id"]
    ]
    assert running == [built], (status["imageID"], node_images)
    # Inside the container: who am I, and can I write to the root filesystem?
    probe = (
        "import os, errno\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n"
        "    open('/kubemr-probe', 'w')\n"
        "except OSError as error:\n"
        "    print(errno.errorcode[error.errno])\n"
        "else:\n"
        "    print('WRITABLE')\n"
    )
    out = kubectl(kind, "-n", cluster.NAMESPACE, "exec", name, "--", "python", "-c", probe)
    assert out.split() == [str(cluster.RUNTIME_UID), str(cluster.RUNTIME_UID), "EROFS"], out
