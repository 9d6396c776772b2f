"""The operator's own settings (not a job's: that is the MapReduceJob spec).

Typed, one docstring per field (unit, default). The environment is read once, by
:func:`from_env` at the entry point (:mod:`kubemr_operator.__main__`), and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubemr import __version__, contract

ENV_PREFIX = "KUBEMR_OPERATOR_"


@dataclass(frozen=True)
class Settings:
    """How the operator runs jobs."""

    image: str = f"ghcr.io/kubemr/kubemr:{__version__}"
    """Image of job pods whose spec names none. Default the release's runtime image."""
    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of job pods. Default IfNotPresent."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch: names (``a,b``: only these, a namespaced Role suffices) or
    one kopf pattern of globs where ``!`` excludes (``team-*,!team-sandbox``); empty
    watches the whole cluster. Default empty."""
    reconcile_interval: float = 2.0
    """Seconds between two reconciliations of a running job. Default 2."""
    status_timeout: float = 2.0
    """Seconds the operator waits for the master's ``/status``. Default 2."""
    master_port: int = contract.MASTER_PORT
    """The master's gRPC port in its pod. Default 7070."""
    shuffle_port: int = contract.SHUFFLE_PORT
    """The mappers' shuffle port in their pods. Default 7071."""
    monitoring_port: int = contract.MONITORING_PORT
    """Port of every job pod's ``/metrics`` and ``/healthz`` (and the master's ``/status``).
    Default 9090."""
    status_linger: float = 15.0
    """Seconds a finished master waits for the operator to read its final ``/status``.
    Default 15 (several reconcile intervals)."""
    work_dir: str = "/var/lib/kubemr"
    """Where each job pod's emptyDir (spills, map output) is mounted. Default
    /var/lib/kubemr."""
    tmp_dir: str = "/var/lib/kubemr-tmp"
    """Where each job pod's writable temporary emptyDir is mounted; ``TMPDIR`` points
    there (the root filesystem, /tmp included, is read-only). Not /tmp itself, so that a
    pod never hides a host path under /tmp it was given (the local cluster runs pods on
    the host's filesystem). Default /var/lib/kubemr-tmp."""
    job_dir: str = "/etc/kubemr"
    """Where the job's manifest (a ConfigMap) is mounted in the master (and, for a
    job with a code bundle, in every pod's init container). Default /etc/kubemr."""
    bundle_dir: str = "/etc/kubemr-bundle"
    """Where a job's code-bundle ConfigMap (``spec.app.bundle.configMap``) is mounted in the
    init container that installs it. Default /etc/kubemr-bundle."""
    app_dir: str = "/var/lib/kubemr-app"
    """Where each pod of a job with a code bundle has the writable emptyDir the bundle is
    unpacked and its requirements installed into (``app/`` and ``site/``, on the
    runtime's import path; read-only for the runtime). Default /var/lib/kubemr-app."""
    run_as_user: int = 65532
    """UID (and GID, fsGroup) of job pods; they never run as root. Default 65532."""
    pod_working_dir: str | None = None
    """workingDir of job pods, where relative input and output paths resolve. Default:
    the image's. The local developer cluster sets the repository root so that the
    examples' relative paths work as they do with ``kubemr run``."""
    command: tuple[str, ...] = ("kubemr",)
    """The runtime's entry point in the image (``kubemr master``/``kubemr worker``)."""
    metrics_port: int = 8080
    """Port of the operator's own ``/metrics``; 0 serves none. Default 8080."""
    liveness_port: int = 8081
    """Port of kopf's liveness endpoint ``/healthz``; 0 serves none. Default 8081."""
    standalone: bool = False
    """Run without kopf peering (one replica, or a developer loop). Default false: peer
    with other replicas when the KopfPeering resources exist."""
    peering: str = "kubemr"
    """Name of the kopf peering object replicas share (unless standalone). Default kubemr."""
    peering_lifetime: int = 30
    """Seconds after which a silent replica counts as gone and another takes over."""
    priority: int | None = None
    """This replica's kopf peering priority; the highest acts, the others wait. Default:
    drawn at random at start, so that two replicas never tie (tied replicas both freeze)."""
    api_server: str | None = None
    """In a pod: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` (as client-go
    builds it); elsewhere none, and the kubeconfig is used."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to every object the operator creates. Default none."""


def from_env(env: Mapping[str, str]) -> Settings:
    """Settings from ``KUBEMR_OPERATOR_*`` variables (unset ones keep their defaults)."""

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name)
        return value if value else None

    defaults = Settings()
    namespaces = get("NAMESPACES")
    return Settings(
        image=get("IMAGE") or defaults.image,
        image_pull_policy=get("IMAGE_PULL_POLICY") or defaults.image_pull_policy,
        namespaces=_namespaces(namespaces or ""),
        reconcile_interval=float(get("RECONCILE_INTERVAL") or defaults.reconcile_interval),
        status_timeout=float(get("STATUS_TIMEOUT") or defaults.status_timeout),
        pod_working_dir=get("POD_WORKING_DIR"),
        metrics_port=int(get("METRICS_PORT") or defaults.metrics_port),
        liveness_port=int(get("LIVENESS_PORT") or defaults.liveness_port),
        standalone=(get("STANDALONE") or "").lower() in ("1", "true", "yes"),
        peering=get("PEERING") or defaults.peering,
        peering_lifetime=int(get("PEERING_LIFETIME") or defaults.peering_lifetime),
        priority=int(priority) if (priority := get("PRIORITY")) else None,
        api_server=_in_cluster(env),
    )


def _namespaces(value: str) -> tuple[str, ...]:
    """Plain names become a tuple; a value with globs stays one kopf pattern."""
    if any(c in value for c in "*?!"):
        return (value,)
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _in_cluster(env: Mapping[str, str]) -> str | None:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
