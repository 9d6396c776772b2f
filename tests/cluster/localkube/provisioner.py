"""Local-directory PersistentVolumes for PersistentVolumeClaims.

At start-up the agent makes a default StorageClass ``standard`` (so claims
without a class get one, as on kind). For every pending claim without a volume it
creates a pre-bound hostPath PersistentVolume under ``.cluster/volumes/`` of the
requested size (not enforced); the controller-manager's PV controller binds the
two. A pod's claim volume is that directory. Volumes are kept (Retain) until
``cluster-down``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from localkube import apiclient

log = logging.getLogger(__name__)

CLASS = "standard"
PROVISIONER = "localkube.io/local-dir"


class ClaimNotBoundError(RuntimeError):
    """A pod uses a claim whose volume does not exist yet."""


class Provisioner:
    def __init__(self, client: apiclient.ApiClient, root: Path) -> None:
        self.client = client
        self.root = root

    def ensure_storage_class(self) -> None:
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        }
        try:
            self.client.create("/apis/storage.k8s.io/v1/storageclasses", body)
        except apiclient.ApiError as error:
            if error.status != 409:
                raise

    def on_claim(self, kind: str, claim: apiclient.Obj) -> None:
        if kind == "DELETED" or claim["spec"].get("volumeName"):
            return
        if claim.get("status", {}).get("phase", "Pending") != "Pending":
            return
        metadata = claim["metadata"]
        name = f"pvc-{metadata['uid']}"
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        storage = claim["spec"].get("resources", {}).get("requests", {}).get("storage", "1Gi")
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": claim["spec"].get("accessModes", ["ReadWriteOnce"]),
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": claim["spec"].get("storageClassName") or "",
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": metadata["namespace"],
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                },
            },
        }
        try:
            self.client.create("/api/v1/persistentvolumes", volume)
            log.info(
                "provisioned %s for claim %s/%s", name, metadata["namespace"], metadata["name"]
            )
        except apiclient.ApiError as error:
            if error.status != 409:
                log.warning("provisioning %s: %s", name, error)

    def claim_path(self, namespace: str, claim: str) -> Path:
        """The directory of the volume bound to ``namespace/claim``."""
        obj = self.client.get(apiclient.resource_path("persistentvolumeclaims", namespace, claim))
        volume = obj["spec"].get("volumeName")
        if not volume:
            raise ClaimNotBoundError(f"claim {namespace}/{claim} is not bound yet")
        pv = self.client.get(f"/api/v1/persistentvolumes/{volume}")
        path = pv["spec"].get("hostPath", {}).get("path") or pv["spec"].get("local", {}).get("path")
        if not path:
            raise ClaimNotBoundError(
                f"volume {volume} of claim {namespace}/{claim} has no local path"
            )
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)
