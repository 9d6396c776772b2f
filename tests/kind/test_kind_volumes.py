"""A job whose input and output live on a volume owned by root, written by UID 65532.

Job pods never run as root; they carry ``fsGroup: 65532`` with ``fsGroupChangePolicy:
OnRootMismatch``, so that the kubelet hands a volume that supports ownership management
to the pods' group before they start. Here the volume is a ``local`` PersistentVolume (a
kind of volume the kubelet does manage ownership of) over a folder of the node's
``/kubemr-data`` that belongs to root with mode 0755: without fsGroup the job could not
write its output there. The job must succeed with the oracle's output.
"""

from __future__ import annotations

import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kindcluster import cluster, layout
from kindjobs import NODE_DATA, apply, kubectl, oracle_of, wait_phase

from testjobs import sorted_output, word_input

pytestmark = [pytest.mark.kind, pytest.mark.timeout(600)]

NODE = "kubemr-worker"
"""The node the local volume lives on (its pods are scheduled there by the PV's affinity)."""
MOUNT = "/data"


@pytest.fixture
def root_owned(kind: cluster.Tools) -> Iterator[Path]:
    """A folder of .kind/data that root owns, mode 0755, with the job's input in ``in/``:
    made by root on the node (whoever runs the tests), removed the same way."""
    folder = layout.DATA / f"rootvol-{uuid.uuid4().hex[:8]}"
    staging = layout.DATA / f"{folder.name}-input"
    staging.mkdir(parents=True)
    word_input(staging, files=4, lines=400)
    node = f"{NODE_DATA}/{folder.name}"
    as_root(kind, f"mkdir -m 0755 {node} && cp -r {NODE_DATA}/{staging.name} {node}/in")
    shutil.rmtree(staging)
    yield folder
    as_root(kind, f"rm -rf {node}")


def as_root(tools: cluster.Tools, script: str) -> None:
    """``sh -c script`` as root on the volume's node (its /kubemr-data is .kind/data)."""
    tools.engine.docker("exec", NODE, "sh", "-c", script)


def local_volume(name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": name,
            "local": {"path": path},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": name,
            "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def test_a_job_writes_its_output_to_a_volume_owned_by_root(
    kind: cluster.Tools, namespace: str, root_owned: Path, tmp_path: Path
) -> None:
    assert root_owned.stat().st_uid == 0 and not root_owned.stat().st_mode & stat.S_IWOTH
    name = f"{namespace}-data"
    kubectl(
        kind,
        "apply",
        "-f",
        "-",
        stdin=json.dumps(local_volume(name, f"{NODE_DATA}/{root_owned.name}")),
    )
    try:
        kubectl(kind, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(claim(name)))
        inputs = sorted(p.name for p in (root_owned / "in").iterdir())
        doc = {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "metadata": {"name": "rootvol"},
            "spec": {
                "app": {"builtin": "wordcount"},
                "input": {"paths": [f"{MOUNT}/in/{p}" for p in inputs], "splitSize": "4Ki"},
                "output": {"path": f"{MOUNT}/out"},
                "reduceTasks": 2,
                "mapper": {"replicas": 2},
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
                "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
            },
        }
        job = apply(kind, namespace, doc)
        done = wait_phase(kind, namespace, job)
        assert done["status"]["phase"] == "Succeeded", done["status"]
        assert root_owned.stat().st_gid == cluster.RUNTIME_UID  # the kubelet's fsGroup
        local = json.loads(json.dumps(doc))
        local["spec"]["input"]["paths"] = [str(root_owned / "in" / p) for p in inputs]
        for key in ("volumes", "volumeMounts"):
            local["spec"].pop(key)
        assert sorted_output(root_owned / "out") == oracle_of(tmp_path, local)
    finally:
        kubectl(kind, "delete", "pv", name, "--wait=false")
