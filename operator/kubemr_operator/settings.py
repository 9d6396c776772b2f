"""The operator's own settings (not a job's: that is the MapReduceJob spec).

Typed, one docstring per field (unit, default). The environment is read once, by
:func:`from_env` at the entry point (:mod:`kubemr_operator.__main__`), and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubemr import __version__, contract
from kubemr.spec import Volume, VolumeMountSpec
from pydantic import TypeAdapter, ValidationError

ENV_PREFIX = "KUBEMR_OPERATOR_"


JITTER_FACTOR = 1.2
"""client-go's margin between ``renew_deadline`` and ``retry_period``: a holder gets at
least one retry (plus jitter) before its deadline."""


@dataclass(frozen=True)
class LeaderElection:
    """Leader election between the operator's replicas (client-go's rules and defaults).

    Only the Lease's holder reconciles. A holder that has not renewed for
    ``renew_deadline`` seconds stops at once (the process exits and is restarted as a
    candidate); another candidate takes the lease ``lease_duration`` seconds after it last
    saw it renewed. Takeover after a crash therefore takes about ``lease_duration`` plus
    up to one ``retry_period``; after a graceful stop (the holder releases the lease) at
    most one ``retry_period``."""

    lease_name: str = "kubemr-operator"
    """Name of the coordination.k8s.io/v1 Lease. Default kubemr-operator."""
    lease_namespace: str = ""
    """Namespace of the Lease. Default empty: the operator's own (its service account's
    in a pod, the kubeconfig context's elsewhere)."""
    identity: str = ""
    """This replica's name in the Lease (``holderIdentity``), followed by a random suffix
    so that a restarted process is a new candidate. Default empty: the host name (in a
    pod, the pod's name)."""
    lease_duration: float = 15.0
    """Seconds a candidate waits, after it last saw the lease renewed, before it takes it
    over. Default 15 (client-go's)."""
    renew_deadline: float = 10.0
    """Seconds without a successful renewal after which the holder stops acting. Must be
    less than ``lease_duration`` (the difference is the safety margin). Default 10
    (client-go's)."""
    retry_period: float = 2.0
    """Seconds between two renewals by the holder, and at most between two looks at the
    lease by a candidate. Default 2 (client-go's)."""

    def __post_init__(self) -> None:
        if self.retry_period <= 0:
            raise ValueError(
                f"leader election: retry_period ({self.retry_period} s) must be positive"
            )
        if not self.lease_duration > self.renew_deadline:
            raise ValueError(
                f"leader election: lease_duration ({self.lease_duration} s) must exceed "
                f"renew_deadline ({self.renew_deadline} s)"
            )
        if not self.renew_deadline > JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"leader election: renew_deadline ({self.renew_deadline} s) must exceed "
                f"{JITTER_FACTOR} x retry_period ({self.retry_period} s)"
            )


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
    create_concurrency: int = 64
    """Most pods of one job a reconciliation creates at once. It creates them in
    slow-start batches of 1, 2, 4, ... up to this many concurrent requests, as Kubernetes'
    Job and ReplicaSet controllers do; a refusal stops the batches after it, so a job the
    API server refuses costs a request or two, not one per pod. Default 64."""
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
    pod_volumes: tuple[dict[str, Any], ...] = ()
    """Volumes added to every job pod (chart: ``jobDefaults.volumes``), such as a shared PVC
    or a node's hostPath holding the jobs' data, so that manifests need not declare them;
    a job's own volume of the same name wins. Default none."""
    pod_volume_mounts: tuple[VolumeMountSpec, ...] = ()
    """Where those volumes appear in every job pod (chart: ``jobDefaults.volumeMounts``);
    one at a path the job mounts a volume of its own at is left out. Default none."""
    command: tuple[str, ...] = ("kubemr",)
    """The runtime's entry point in the image (``kubemr master``/``kubemr worker``)."""
    metrics_port: int = 8080
    """Port of the operator's own ``/metrics``; 0 serves none. Default 8080."""
    liveness_port: int = 8081
    """Port of kopf's liveness endpoint ``/healthz``; 0 serves none. Default 8081."""
    standalone: bool = False
    """Run without leader election: this process reconciles at once and alone (one
    replica, or a developer loop). Default false: replicas elect a leader on a Lease
    (:attr:`election`) and only the leader reconciles."""
    election: LeaderElection = field(default_factory=LeaderElection)
    """The Lease and its timing (unless standalone)."""
    api_server: str | None = None
    """In a pod: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` (as client-go
    builds it); elsewhere none, and the kubeconfig is used."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to every object the operator creates. Default none."""

    def __post_init__(self) -> None:
        if self.create_concurrency < 1:
            raise ValueError(
                f"{ENV_PREFIX}CREATE_CONCURRENCY ({self.create_concurrency}) must be at least 1"
            )


def from_env(env: Mapping[str, str]) -> Settings:
    """Settings from ``KUBEMR_OPERATOR_*`` variables (unset ones keep their defaults)."""

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name)
        return value if value else None

    defaults = Settings()
    election = defaults.election
    namespaces = get("NAMESPACES")
    return Settings(
        image=get("IMAGE") or defaults.image,
        image_pull_policy=get("IMAGE_PULL_POLICY") or defaults.image_pull_policy,
        namespaces=_namespaces(namespaces or ""),
        reconcile_interval=float(get("RECONCILE_INTERVAL") or defaults.reconcile_interval),
        create_concurrency=int(get("CREATE_CONCURRENCY") or defaults.create_concurrency),
        status_timeout=float(get("STATUS_TIMEOUT") or defaults.status_timeout),
        pod_working_dir=get("POD_WORKING_DIR"),
        **_pod_volumes(get("POD_VOLUMES"), get("POD_VOLUME_MOUNTS")),
        metrics_port=int(get("METRICS_PORT") or defaults.metrics_port),
        liveness_port=int(get("LIVENESS_PORT") or defaults.liveness_port),
        standalone=(get("STANDALONE") or "").lower() in ("1", "true", "yes"),
        election=LeaderElection(
            lease_name=get("LEASE_NAME") or election.lease_name,
            lease_namespace=get("LEASE_NAMESPACE") or election.lease_namespace,
            identity=get("IDENTITY") or election.identity,
            lease_duration=float(get("LEASE_DURATION") or election.lease_duration),
            renew_deadline=float(get("RENEW_DEADLINE") or election.renew_deadline),
            retry_period=float(get("RETRY_PERIOD") or election.retry_period),
        ),
        api_server=_in_cluster(env),
    )


def _pod_volumes(volumes: str | None, mounts: str | None) -> dict[str, Any]:
    """``pod_volumes`` and ``pod_volume_mounts`` from their JSON lists, checked as the
    job spec checks its own (a ValueError names the variable)."""
    parsed: dict[str, Any] = {}
    for name, text, adapter, field_name in (
        ("POD_VOLUMES", volumes, _VOLUMES, "pod_volumes"),
        ("POD_VOLUME_MOUNTS", mounts, _MOUNTS, "pod_volume_mounts"),
    ):
        try:
            parsed[field_name] = tuple(adapter.validate_json(text or "[]"))
        except ValidationError as error:
            raise ValueError(f"{ENV_PREFIX}{name}: {error}") from None
    unknown = {m.name for m in parsed["pod_volume_mounts"]} - {
        v["name"] for v in parsed["pod_volumes"]
    }
    if unknown:
        raise ValueError(
            f"{ENV_PREFIX}POD_VOLUME_MOUNTS names volumes not in "
            f"{ENV_PREFIX}POD_VOLUMES: {sorted(unknown)}"
        )
    return parsed


_VOLUMES = TypeAdapter(list[Volume])
_MOUNTS = TypeAdapter(list[VolumeMountSpec])


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
