"""Where the kind tier keeps things: the content-keyed cache and the checkout's ``.kind/``.

Built artefacts (Go binaries, the Debian root filesystem, saved images, the node image)
live under ``~/.cache/kubemr/kind`` keyed by a hash of their inputs, so a fresh clone on
a warm machine (CI) reuses them, as Go's own build cache does; ``KUBEMR_CACHE`` moves the
cache. What belongs to one checkout's cluster (kubeconfig, the data directory every node
mounts) lives in ``.kind/`` (ignored by git).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The kubemr checkout this package lives in."""
KIND_DIR = REPO_ROOT / "tests" / "kind"
"""The kind tier's sources: Dockerfiles, CoreDNS's Go module, the runtime wrapper."""
COREDNS_MODULE = KIND_DIR / "corednsbuild"
"""CoreDNS with the plugins of kubeadm's Corefile only (its own Go module)."""
IMAGES_DIR = KIND_DIR / "images"
"""One folder per image built from a Dockerfile of ours."""
RUNTIME_WRAPPER = KIND_DIR / "engine" / "runc-capsfilter"
"""The OCI runtime wrapper dockerd uses where privileged containers fail."""
PAUSE_SOURCE = KIND_DIR / "images" / "pause" / "pause.c"
"""Our pause program, the sandbox image's only file."""
NETWORK_POLICY_ENGINE = KIND_DIR / "images" / "kube-router" / "kube-router.yaml"
"""kube-router's DaemonSet: the cluster's NetworkPolicy engine (kindnetd's needs nft queue)."""

STATE = REPO_ROOT / ".kind"
"""This checkout's cluster state (ignored)."""
KUBECONFIG = STATE / "kubeconfig"
"""The kind cluster's kubeconfig that ``make kind-up`` writes."""
DATA = STATE / "data"
"""Mounted at /kubemr-data on every node (kind-config.yaml): jobs' input and output."""
KIND_CONFIG = REPO_ROOT / "kind-config.yaml"
"""The cluster's kind configuration, the one users use too."""


def cache_root() -> Path:
    """``$KUBEMR_CACHE/kind`` or ``~/.cache/kubemr/kind``."""
    base = os.environ.get("KUBEMR_CACHE") or str(Path.home() / ".cache" / "kubemr")
    return Path(base) / "kind"


def engine_root() -> Path:
    """Our own dockerd's data root, sockets and log (``~/.cache/kubemr/docker``).

    Outside the checkout, so that images loaded into our engine outlive a fresh clone.
    """
    base = os.environ.get("KUBEMR_CACHE") or str(Path.home() / ".cache" / "kubemr")
    return Path(base) / "docker"
