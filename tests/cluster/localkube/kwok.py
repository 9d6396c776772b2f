"""Simulated nodes: kwok (sigs.k8s.io/kwok), built from its Go module, on a localkube cluster.

kwok's controller plays the kubelet of Nodes that run nothing: pods bound to them are
marked Running and Ready at once (kwok's ``fast`` stages), and a deleted pod's object
is removed. It lets the operator's own work be measured at a scale no process-running
node agent reaches on one machine (``bench/operatorscale.py``).

``make cluster-build`` builds it into ``.cluster/bin/kwok`` beside localkube, as a
``tool`` of ``tests/cluster/go.mod``: it links the Kubernetes libraries already compiled
for localkube, so it adds about 20 s to a cold localkube build (``go install`` with kwok's
own go.mod, whose library versions differ, took 253 s wall and 400 s CPU cold).
The stages are kwok's own YAML, read from the module cache (never copied
into the repository). Only Nodes carrying :data:`LABEL` are kwok's; they also carry the
NoSchedule taint :data:`TAINT`, so that only pods that tolerate it (and select them)
land there, and a cluster's other nodes and tests are left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from localkube import build, layout, processes

MODULE = "sigs.k8s.io/kwok"
VERSION = build.module_version(MODULE)
"""The kwok release tests/cluster/go.mod pins (a ``tool`` there: localkube.build builds it
with the module's Kubernetes libraries, v0.36.3, not the v0.36.1 of kwok's own go.mod)."""
STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
"""kwok's stage sets under ``kustomize/stage/``, as ``kwokctl`` configures them by default:
nodes initialised Ready and their Leases renewed, pods Ready at once and removed on delete."""
LABEL = "kubemr.io/simulated-node"
"""Label (value ``true``) of the Nodes kwok manages."""
TAINT = "kubemr.io/simulated-node"
"""Key of the NoSchedule taint on those Nodes (value ``true``)."""
POD_CIDR = "198.18.0.0/16"
"""Where kwok takes pod IPs from: RFC 2544's benchmarking range, never a real host."""
LEASE_SECONDS = 40
"""Duration of the simulated Nodes' Leases, which kwok renews (the kubelet's default)."""


class KwokError(RuntimeError):
    """kwok is missing, or its stages cannot be located."""


def module_dir() -> Path:
    """kwok's source in the Go module cache (downloaded if missing)."""
    result = subprocess.run(
        [build.go_command(), "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if result.returncode != 0:
        raise KwokError(f"go mod download {MODULE}@{VERSION}: {result.stderr.strip()}")
    return Path(json.loads(result.stdout)["Dir"])


def write_config(paths: layout.Layout) -> Path:
    """kwok's configuration: the :data:`STAGES` documents, one YAML stream."""
    source = module_dir() / "kustomize" / "stage"
    documents = []
    for stage in STAGES:
        files = sorted(p for p in (source / stage).glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            raise KwokError(f"no stage files in {source / stage}")
        documents += [p.read_text(encoding="utf-8").strip() for p in files]
    config = paths.root / "kwok.yaml"
    config.write_text("\n---\n".join(documents) + "\n", encoding="utf-8")
    return config


def start(paths: layout.Layout, log: Path) -> processes.Handle:
    """Start kwok's controller for the Nodes labelled :data:`LABEL` (detached; it carries
    the cluster's marker, so ``localkube down`` stops it too)."""
    config = write_config(paths)
    return processes.start(
        "kwok",
        [
            str(paths.kwok),
            f"--config={config}",
            f"--kubeconfig={paths.kubeconfig}",
            f"--manage-nodes-with-label-selector={LABEL}=true",
            f"--cidr={POD_CIDR}",
            f"--node-lease-duration-seconds={LEASE_SECONDS}",
        ],
        log,
        paths.root,
    )


def node(name: str, pods: int = 110, cpu: str = "32", memory: str = "256Gi") -> dict[str, Any]:
    """A simulated Node's manifest (kwok fills in its status once it is created)."""
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                LABEL: "true",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "type": "kwok",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}]},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def toleration() -> dict[str, str]:
    """What a pod needs to be scheduled on a simulated Node."""
    return {"key": TAINT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
