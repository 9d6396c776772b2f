"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler, started like envtest.

Each component is a subcommand of the ``localkube`` binary, listens on a free
loopback port (the API server also on the pod bridge, so pods reach it) and is
health-checked before the next one starts: etcd ``/health``, the API server
``/readyz``, the controller-manager and the scheduler ``/healthz``.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
from pathlib import Path

from localkube import apiclient, build, deadlines, layout, network, pki, processes

SERVICE_CIDR = "10.96.0.0/12"
SERVICE_IP = "10.96.0.1"
"""The ``kubernetes`` Service's cluster IP (first address of the service range)."""
CLUSTER_DOMAIN = "cluster.local"


@dataclasses.dataclass(frozen=True)
class Ports:
    """The ports the control plane listens on (all free ports picked at start)."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def pick(cls) -> Ports:
        picked: set[int] = set()
        while len(picked) < 5:
            picked.add(processes.free_port())
        return cls(*sorted(picked))


AUDIT_POLICY = """\
# Who called which verb on which resource: the operator's least-privilege test reads it.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  userGroups: ["system:nodes"]
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*"]
- level: Metadata
"""


def credentials(paths: layout.Layout, server: str) -> apiclient.Credentials:
    files = pki.Pki(paths.pki)
    return apiclient.Credentials(
        server=server,
        ca_cert=files.ca_cert,
        client_cert=files.client_cert(pki.ADMIN),
        client_key=files.client_key(pki.ADMIN),
    )


def _http_ok(host: str, port: int, path: str, tls: bool) -> bool:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, context=context, timeout=5
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if path == "/health":
        return response.status == 200 and json.loads(body).get("health") == "true"
    return response.status == 200


def _wait_healthy(
    handle: processes.Handle,
    deadline: deadlines.Deadline,
    port: int,
    *,
    path: str,
    tls: bool,
    log: Path,
) -> None:
    def probe() -> bool | None:
        if not handle.alive():
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise ComponentExitedError(f"{handle.name} exited during start-up; log {log}:\n{tail}")
        return True if _http_ok("127.0.0.1", port, path, tls) else None

    try:
        deadlines.poll(deadline, probe, f"{handle.name} {path} on port {port}", interval=0.1)
    except ComponentExitedError:
        raise
    except deadlines.DeadlineExceededError as error:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise deadlines.DeadlineExceededError(f"{error}\nlog {log}:\n{tail}") from None


class ComponentExitedError(RuntimeError):
    """A control-plane process exited before it became healthy."""


def start(paths: layout.Layout, ports: Ports) -> list[processes.Handle]:
    """Start the four components in order, each healthy before the next; return handles."""
    files = pki.Pki(paths.pki)
    server = f"https://127.0.0.1:{ports.apiserver}"
    files.create(
        hosts=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
        ],
        addresses=["127.0.0.1", str(network.GATEWAY), SERVICE_IP],
    )
    files.write_kubeconfig(paths.kubeconfig, server, pki.ADMIN)
    for identity in (pki.CONTROLLER_MANAGER, pki.SCHEDULER):
        files.write_kubeconfig(paths.component_kubeconfig(identity.name), server, identity)

    binary = str(paths.localkube)
    handles: list[processes.Handle] = []

    def launch(name: str, argv: list[str]) -> processes.Handle:
        log = paths.component_log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = processes.start(name, [binary, *argv], log, paths.root)
        handles.append(handle)
        return handle

    try:
        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        etcd = launch(
            "etcd",
            [
                "etcd",
                "--name=localkube",
                f"--data-dir={paths.etcd_data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=localkube={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _wait_healthy(
            etcd,
            deadlines.ETCD_READY,
            ports.etcd_client,
            path="/health",
            tls=False,
            log=paths.component_log("etcd"),
        )

        paths.audit_policy.write_text(AUDIT_POLICY, encoding="utf-8")
        apiserver = launch(
            "kube-apiserver",
            [
                "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                "--bind-address=0.0.0.0",
                f"--advertise-address={network.GATEWAY}",
                f"--secure-port={ports.apiserver}",
                f"--cert-dir={paths.pki}",
                f"--tls-cert-file={files.serving_cert}",
                f"--tls-private-key-file={files.serving_key}",
                f"--client-ca-file={files.ca_cert}",
                "--authorization-mode=RBAC",
                f"--kubelet-client-certificate={files.client_cert(pki.APISERVER_KUBELET)}",
                f"--kubelet-client-key={files.client_key(pki.APISERVER_KUBELET)}",
                f"--kubelet-certificate-authority={files.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
                f"--service-account-key-file={files.sa_pub}",
                f"--service-account-signing-key-file={files.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-policy-file={paths.audit_policy}",
                f"--audit-log-path={paths.audit_log}",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
                "--v=0",
            ],
        )
        _wait_healthy(
            apiserver,
            deadlines.APISERVER_READY,
            ports.apiserver,
            path="/readyz",
            tls=True,
            log=paths.component_log("kube-apiserver"),
        )

        common = ["--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false"]
        controller_manager = launch(
            "kube-controller-manager",
            [
                "kube-controller-manager",
                *common,
                f"--kubeconfig={paths.component_kubeconfig('controller-manager')}",
                f"--secure-port={ports.controller_manager}",
                f"--service-account-private-key-file={files.sa_key}",
                f"--root-ca-file={files.ca_cert}",
                f"--cluster-signing-cert-file={files.ca_cert}",
                f"--cluster-signing-key-file={files.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=true",
                f"--cert-dir={paths.pki / 'controller-manager'}",
            ],
        )
        scheduler = launch(
            "kube-scheduler",
            [
                "kube-scheduler",
                *common,
                f"--kubeconfig={paths.component_kubeconfig('scheduler')}",
                f"--secure-port={ports.scheduler}",
                f"--cert-dir={paths.pki / 'scheduler'}",
            ],
        )
        _wait_healthy(
            controller_manager,
            deadlines.COMPONENT_READY,
            ports.controller_manager,
            path="/healthz",
            tls=True,
            log=paths.component_log("kube-controller-manager"),
        )
        _wait_healthy(
            scheduler,
            deadlines.COMPONENT_READY,
            ports.scheduler,
            path="/healthz",
            tls=True,
            log=paths.component_log("kube-scheduler"),
        )
    except BaseException:
        for handle in reversed(handles):
            processes.stop(handle)
        raise
    return handles


def version_of(paths: layout.Layout) -> str:
    """The Kubernetes version the binaries were built from."""
    del paths
    return build.kubernetes_version()
