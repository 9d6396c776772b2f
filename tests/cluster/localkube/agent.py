"""The node agent: registers Nodes and runs the pods bound to them as local processes.

It plays the kubelet's part for the harness (it is not product code): it
creates one or more Ready Nodes with a fixed capacity, renews their Leases, runs
a :class:`localkube.pods.PodWorker` for every pod the scheduler binds to them,
keeps every pod's hosts file in step with Services and EndpointSlices, and
provisions a local directory PersistentVolume for each pending claim (see
:mod:`localkube.provisioner`). It runs as ``python -m localkube agent``.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import threading
import time
from pathlib import Path

from localkube import (
    apiclient,
    build,
    containers,
    controlplane,
    hosts,
    informers,
    kubeletapi,
    layout,
    network,
    pki,
    pods,
    provisioner,
)

log = logging.getLogger(__name__)

CAPACITY = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}
"""What each Node advertises (nothing enforces it)."""
LEASE_SECONDS = 40
RENEW_SECONDS = 10.0


def microtime() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class NodeAgent:
    """See the module docstring."""

    def __init__(
        self, client: apiclient.ApiClient, paths: layout.Layout, nodes: list[str], api_port: int
    ) -> None:
        self.client = client
        self.paths = paths
        self.nodes = nodes
        self.api_port = api_port
        self.pool = network.AddressPool()
        self.workers: dict[str, pods.PodWorker] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.provisioner = provisioner.Provisioner(client, paths.root / "volumes")
        self.pod_informer = informers.Informer(
            client, "/api/v1/pods", self._on_pod, {"fieldSelector": "spec.nodeName!="}
        )
        self.service_informer = informers.Informer(client, "/api/v1/services", self._on_names)
        self.slice_informer = informers.Informer(
            client, "/apis/discovery.k8s.io/v1/endpointslices", self._on_names
        )
        self.claim_informer = informers.Informer(
            client, "/api/v1/persistentvolumeclaims", self.provisioner.on_claim
        )
        self._entries: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._names_lock = threading.Lock()

    # Nodes -----------------------------------------------------------------

    def _node(self, name: str) -> apiclient.Obj:
        version = build.kubernetes_version()
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "localkube node agent is posting ready status",
            "lastHeartbeatTime": microtime()[:19] + "Z",
            "lastTransitionTime": microtime()[:19] + "Z",
        }
        quiet = [
            {
                "type": kind,
                "status": "False",
                "reason": f"KubeletHasNo{kind}",
                "lastHeartbeatTime": ready["lastHeartbeatTime"],
                "lastTransitionTime": ready["lastTransitionTime"],
            }
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "localkube",
                },
            },
            "spec": {},
            "status": {
                "capacity": CAPACITY,
                "allocatable": CAPACITY,
                "conditions": [ready, *quiet],
                "addresses": [
                    {"type": "InternalIP", "address": str(network.GATEWAY)},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": name,
                    "systemUUID": name,
                    "bootID": name,
                    "kernelVersion": platform.release(),
                    "osImage": "localkube",
                    "containerRuntimeVersion": "localkube://" + version,
                    "kubeletVersion": version,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }

    def register(self) -> None:
        for name in self.nodes:
            node = self._node(name)
            try:
                self.client.create("/api/v1/nodes", node)
            except apiclient.ApiError as error:
                if error.status != 409:
                    raise
            self.client.merge_patch(f"/api/v1/nodes/{name}/status", {"status": node["status"]})
            self._renew(name)

    def _renew(self, name: str) -> None:
        path = apiclient.resource_path(
            "leases", "kube-node-lease", name, group_version="coordination.k8s.io/v1"
        )
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": microtime(),
        }
        try:
            self.client.merge_patch(path, {"spec": spec})
        except apiclient.ApiError as error:
            if error.status != 404:
                raise
            owner = self.client.get(f"/api/v1/nodes/{name}")["metadata"]
            self.client.create(
                apiclient.resource_path(
                    "leases", "kube-node-lease", group_version="coordination.k8s.io/v1"
                ),
                {
                    "metadata": {
                        "name": name,
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": owner["uid"]}
                        ],
                    },
                    "spec": spec,
                },
            )

    def _heartbeat(self) -> None:
        beats = 0
        while not self.stopped.wait(RENEW_SECONDS):
            beats += 1
            for name in self.nodes:
                try:
                    self._renew(name)
                    if beats % 6 == 0:
                        status = self._node(name)["status"]
                        self.client.merge_patch(
                            f"/api/v1/nodes/{name}/status",
                            {"status": {"conditions": status["conditions"]}},
                        )
                except Exception as error:
                    log.warning("node %s heartbeat: %s", name, error)

    # Pods ------------------------------------------------------------------

    def _base_env(self, pod: apiclient.Obj, home: Path) -> dict[str, str]:
        return containers.base_environment(
            pod, self.paths.root, str(network.GATEWAY), self.api_port, home
        )

    def _hosts_for(self, pod: apiclient.Obj, address: str) -> str:
        return hosts.render(pod, address, self._entries)

    def _pod_dir(self, pod: apiclient.Obj) -> Path:
        metadata = pod["metadata"]
        return self.paths.pods / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}"

    def _worker_exited(self, worker: pods.PodWorker) -> None:
        with self.lock:
            self.workers.pop(worker.uid, None)
            self.finished.add(worker.uid)

    def _on_pod(self, kind: str, pod: apiclient.Obj) -> None:
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        uid = str(pod["metadata"]["uid"])
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.update(None)
                return
            if worker is not None:
                worker.update(pod)
                return
            if uid in self.finished or self.stopped.is_set():
                return
            phase = pod.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed") and "deletionTimestamp" not in pod["metadata"]:
                return
            worker = pods.PodWorker(
                self.client,
                pod,
                self._pod_dir(pod),
                self.pool,
                base_env=self._base_env,
                hosts_for=self._hosts_for,
                claim_path=self.provisioner.claim_path,
                on_exit=self._worker_exited,
            )
            self.workers[uid] = worker
        worker.thread.start()

    def _on_names(self, kind: str, obj: apiclient.Obj) -> None:
        del kind, obj
        if not (self.service_informer.synced.is_set() and self.slice_informer.synced.is_set()):
            return
        # Both informers' threads land here: one at a time, each reading the latest caches,
        # so an older computation can never overwrite a newer one.
        with self._names_lock:
            self._entries = hosts.service_entries(
                self.service_informer.objects(), self.slice_informer.objects()
            )
            with self.lock:
                workers = list(self.workers.values())
            for worker in workers:
                try:
                    worker.refresh_hosts()
                except OSError as error:
                    log.warning("pod %s: hosts file: %s", worker.key, error)

    def _container_running(self, namespace: str, pod: str, container: str) -> bool:
        with self.lock:
            workers = [w for w in self.workers.values() if w.key == f"{namespace}/{pod}"]
        return any(
            r.name == container and r.running() for w in workers for r in w.init_runs + w.runs
        )

    # Life cycle ------------------------------------------------------------

    def run(self) -> None:
        """Register, serve until SIGTERM/SIGINT, then stop every pod's processes."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopped.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopped.set())
        network.ensure_bridge()
        self.provisioner.ensure_storage_class()
        files = pki.Pki(self.paths.pki)
        kubeletapi.serve(
            str(network.GATEWAY),
            files.kubelet_cert,
            files.kubelet_key,
            self.paths.pods,
            self._container_running,
        )
        self.register()
        for informer in (self.service_informer, self.slice_informer, self.claim_informer):
            informer.start()
        self.service_informer.synced.wait(30)
        self.slice_informer.synced.wait(30)
        self._on_names("SYNC", {})
        self.pod_informer.start()
        heart = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heart.start()
        log.info("node agent ready: nodes %s", ", ".join(self.nodes))
        # Resync the hosts files now and then, for a pod whose sandbox was being made while
        # the names changed (the write is skipped when nothing changed).
        while not self.stopped.wait(2.0):
            self._on_names("RESYNC", {})
        log.info("node agent stopping")
        for informer in (
            self.pod_informer,
            self.service_informer,
            self.slice_informer,
            self.claim_informer,
        ):
            informer.stop()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.stopping.set()
            worker.changed.set()
        for worker in workers:
            worker.thread.join(timeout=30)


def main(paths: layout.Layout, server: str, nodes: list[str]) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s"
    )
    client = apiclient.ApiClient(controlplane.credentials(paths, server))
    port = int(server.rsplit(":", 1)[1])
    agent = NodeAgent(client, paths, nodes, port)
    agent.run()
    os._exit(0)
