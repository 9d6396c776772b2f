"""Where everything of a local cluster lives on disk (``.cluster/`` in the repository).

One :class:`Layout` names every path; nothing else in the package builds paths by
hand, so a second cluster directory (tests of the harness itself) is just another
``Layout``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The kubemr checkout this harness lives in."""
GO_MODULE = REPO_ROOT / "tests" / "cluster"
"""The Go module that builds the control-plane binaries."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths of one local cluster."""

    root: Path
    """The cluster directory, ``.cluster/`` by default (``LOCALKUBE_DIR`` overrides)."""

    @classmethod
    def default(cls) -> Layout:
        return cls(Path(os.environ.get("LOCALKUBE_DIR", REPO_ROOT / ".cluster")).resolve())

    @property
    def bin(self) -> Path:
        """Built binaries: localkube (and its kubectl link), helm and kwok."""
        return self.root / "bin"

    @property
    def localkube(self) -> Path:
        return self.bin / "localkube"

    @property
    def kubectl(self) -> Path:
        return self.bin / "kubectl"

    @property
    def helm(self) -> Path:
        return self.bin / "helm"

    @property
    def kwok(self) -> Path:
        """kwok's controller, the simulated nodes' kubelet (:mod:`localkube.kwok`)."""
        return self.bin / "kwok"

    @property
    def build_stamp(self) -> Path:
        """Hash of the pins the binaries in ``bin`` were built from."""
        return self.bin / ".stamp"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        """Control-plane logs, one file per component."""
        return self.root / "logs"

    @property
    def pods(self) -> Path:
        """Per-pod directories: volumes and one log per container."""
        return self.root / "pods"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in system:masters)."""
        return self.root / "kubeconfig"

    @property
    def state(self) -> Path:
        """JSON record of the running processes and ports (see :mod:`localkube.state`)."""
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def component_kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"

    def component_log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines, metadata level): who called what."""
        return self.logs / "audit.log"

    @property
    def audit_policy(self) -> Path:
        return self.pki / "audit-policy.yaml"
