"""Spec -> manifests: the Kubernetes objects one MapReduceJob owns. Pure, no I/O.

A job ``wc`` owns a ConfigMap ``wc-spec`` (the validated manifest the master reads), a
Secret ``wc-token`` (the job's token, on every gRPC call), a headless Service
``wc-master`` (the master's stable name), a NetworkPolicy ``wc-network`` (only the job's
pods reach its gRPC ports), the master pod and one pod per mapper and reducer slot. Every name
is deterministic, so an operator restarted at any moment finds (and adopts) what it had
created instead of creating it twice. A replacement pod gets the next attempt number:
``wc-mapper-0``, then ``wc-mapper-0-1``, ``wc-mapper-0-2``...

Every object carries an owner reference to the job (deleting the job deletes them) and
the labels ``kubemr.io/job``, ``kubemr.io/role``, ``kubemr.io/index`` and
``kubemr.io/attempt``. Every pod serves ``/metrics`` on its ``monitoring`` port and
carries the ``prometheus.io/*`` scrape annotations (the Helm chart's PodMonitor,
``metrics.podMonitor.enabled``, scrapes that port for the Prometheus operator).

A job with a code bundle (``spec.app.bundle``, written by ``kubemr submit``) gets, in every
pod, an init container ``install-app`` (``kubemr install-app``, the same image and the same
restricted security context) that verifies the bundle's SHA-256, unpacks it into a writable
emptyDir and installs its requirements from the shipped wheels (``pip --no-index``); the
runtime container mounts that emptyDir read-only and has its ``app/`` and ``site/`` first
on ``PYTHONPATH``. The bundle's ConfigMap is the submitter's (content-named, owned by the
job), mounted read-only; a bundle in S3 is read with the job's storage credentials.

Object-store credentials never appear in the custom resource: with
``spec.storage.credentialsSecret`` every job pod gets ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and, if the Secret has it, ``AWS_SESSION_TOKEN``) from that
Secret by reference; otherwise the AWS chain in the pod finds them itself (IRSA through
``spec.serviceAccountName``, or the node's instance profile). The endpoint and region
travel in the job's spec, which the runtime reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubemr import contract
from kubemr import spec as specs

from kubemr_operator.settings import Settings

GROUP = contract.GROUP
API_VERSION = contract.API_VERSION
LABEL_JOB = f"{GROUP}/job"
LABEL_ROLE = f"{GROUP}/role"
LABEL_INDEX = f"{GROUP}/index"
LABEL_ATTEMPT = f"{GROUP}/attempt"
MASTER, MAPPER, REDUCER = contract.MASTER, contract.MAPPER, contract.REDUCER
ROLES = contract.ROLES
JOB_FILE = "job.json"
TOKEN_KEY = "token"
WORK_VOLUME = "kubemr-work"
TMP_VOLUME = "kubemr-tmp"
JOB_VOLUME = "kubemr-job"
APP_VOLUME = "kubemr-app"
BUNDLE_VOLUME = "kubemr-bundle"
INSTALL_CONTAINER = "install-app"
"""The init container of a job with a code bundle: it unpacks the bundle and installs the
requirements; its failure ends the job (lifecycle: ``AppInstallFailed``)."""

Manifest = dict[str, Any]


@dataclass(frozen=True)
class JobRef:
    """The identity of a MapReduceJob object."""

    name: str
    namespace: str
    uid: str


def pod_name(job: str, role: str, index: int, attempt: int) -> str:
    base = f"{job}-{MASTER}" if role == MASTER else f"{job}-{role}-{index}"
    return base if attempt == 0 else f"{base}-{attempt}"


def config_map_name(job: str) -> str:
    return f"{job}-spec"


def secret_name(job: str) -> str:
    return f"{job}-token"


def service_name(job: str) -> str:
    return f"{job}-{MASTER}"


def network_policy_name(job: str) -> str:
    return f"{job}-network"


def path_problems(spec: specs.JobSpec, settings: Settings) -> tuple[str, ...]:
    """Why the job's relative input or output paths cannot run on the cluster: job pods
    have no working directory of the user's (the image's, on a read-only root filesystem),
    unless the operator sets one (``settings.pod_working_dir``)."""
    if settings.pod_working_dir:
        return ()
    return tuple(
        f"{field}: {path!r} is a relative path, and job pods have no working directory "
        "for it (the image's, on a read-only root filesystem): give an absolute path on a "
        "volume the pods mount (spec.volumes and spec.volumeMounts) or an s3:// URI"
        for field, path in specs.relative_paths(spec)
    )


def _default_volumes(
    spec: specs.JobSpec, settings: Settings
) -> tuple[list[Manifest], list[Manifest]]:
    """The operator's volumes for every job pod (``settings.pod_volumes``) and their
    mounts, less those the job overrides: a volume whose name the job's own volumes use
    (with its mounts), a mount at a path the job mounts something at."""
    taken = {str(v["name"]) for v in spec.volumes}
    paths = {m.mount_path for m in spec.volume_mounts}
    volumes = [dict(v) for v in settings.pod_volumes if v["name"] not in taken]
    mounts = [
        m.model_dump(by_alias=True, exclude_none=True)
        for m in settings.pod_volume_mounts
        if m.name not in taken and m.mount_path not in paths
    ]
    return volumes, mounts


def master_address(ref: JobRef, settings: Settings) -> str:
    """``host:port`` of the master as the job's pods reach it (the headless Service)."""
    return contract.host_port(f"{service_name(ref.name)}.{ref.namespace}.svc", settings.master_port)


def labels(
    job: str, settings: Settings, role: str | None = None, index: int | None = None
) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "kubemr",
        "app.kubernetes.io/managed-by": "kubemr-operator",
        "app.kubernetes.io/instance": job,
        **settings.extra_labels,
        LABEL_JOB: job,
    }
    if role is not None:
        out[LABEL_ROLE] = role
        out["app.kubernetes.io/component"] = role
    if index is not None:
        out[LABEL_INDEX] = str(index)
    return out


def _metadata(ref: JobRef, name: str, labels_: dict[str, str]) -> Manifest:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": labels_,
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": specs.KIND,
                "name": ref.name,
                "uid": ref.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def config_map(ref: JobRef, job: specs.MapReduceJob, settings: Settings) -> Manifest:
    """The validated manifest (defaults applied) that the master pod reads."""
    document = json.dumps(specs.dump_job(job), indent=2, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, config_map_name(ref.name), labels(ref.name, settings)),
        "data": {JOB_FILE: document},
    }


def secret(ref: JobRef, token: str, settings: Settings) -> Manifest:
    """The job's token: its pods present it to each other (authenticated shuffle)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(ref, secret_name(ref.name), labels(ref.name, settings)),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def service(ref: JobRef, settings: Settings) -> Manifest:
    """A headless Service: a stable DNS name for whichever master pod is current.

    It publishes the master pod's address before the pod is ready: workers find a
    restarted master as soon as it serves, within the window in which it keeps their map
    outputs. There is never a second master to publish: the operator creates a
    replacement only once the old pod is gone (see docs/runtime.md, "At most one
    master")."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref, service_name(ref.name), labels(ref.name, settings, MASTER)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB: ref.name, LABEL_ROLE: MASTER},
            "ports": [
                {"name": "grpc", "port": settings.master_port, "targetPort": "grpc"},
                {
                    "name": "monitoring",
                    "port": settings.monitoring_port,
                    "targetPort": "monitoring",
                },
            ],
        },
    }


def network_policy(ref: JobRef, settings: Settings) -> Manifest:
    """Ingress to the job's pods: the master and shuffle ports only from the job's own pods
    (same namespace, same ``kubemr.io/job``), the monitoring port from anywhere (Prometheus,
    the operator reading ``/status``). Enforced only where the cluster's network plugin
    implements NetworkPolicy; the job token is checked either way."""
    job_pods = {"matchLabels": {LABEL_JOB: ref.name}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(ref, network_policy_name(ref.name), labels(ref.name, settings)),
        "spec": {
            "podSelector": job_pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": job_pods}],
                    "ports": [
                        {"protocol": "TCP", "port": settings.master_port},
                        {"protocol": "TCP", "port": settings.shuffle_port},
                    ],
                },
                {"ports": [{"protocol": "TCP", "port": settings.monitoring_port}]},
            ],
        },
    }


def scrape_annotations(settings: Settings) -> dict[str, str]:
    """The conventional annotations that let an annotation-driven Prometheus scrape a pod."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(settings.monitoring_port),
        "prometheus.io/path": "/metrics",
    }


def _monitoring_port(settings: Settings) -> Manifest:
    return {"name": "monitoring", "containerPort": settings.monitoring_port}


def _env(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def _field_env(name: str, path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


AWS_SECRET_KEYS = (
    ("AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", True),
)
"""Keys of ``spec.storage.credentialsSecret`` mapped into every job pod's environment,
each with whether it may be missing from the Secret."""


def storage_env(storage: specs.StorageSpec) -> list[Manifest]:
    """The AWS chain's credentials from ``spec.storage.credentialsSecret``, by reference
    (the values stay in the Secret); none without it (IRSA, instance profile)."""
    if storage.credentials_secret is None:
        return []
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {
                    "name": storage.credentials_secret,
                    "key": key,
                    **({"optional": True} if optional else {}),
                }
            },
        }
        for key, optional in AWS_SECRET_KEYS
    ]


def _resources(resources: specs.ResourceSpec) -> Manifest:
    out: Manifest = {}
    if resources.requests:
        out["requests"] = {k: str(v) for k, v in resources.requests.items()}
    if resources.limits:
        out["limits"] = {k: str(v) for k, v in resources.limits.items()}
    return out


def _security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _job_volume(ref: JobRef) -> Manifest:
    return {"name": JOB_VOLUME, "configMap": {"name": config_map_name(ref.name)}}


def _bundle_parts(
    ref: JobRef, job: specs.MapReduceJob, settings: Settings, container: Manifest
) -> tuple[list[Manifest], list[Manifest]]:
    """For a job with a code bundle: the init container that installs it, and the volumes
    it needs (the runtime ``container`` is changed to use what it installed)."""
    bundle = job.spec.app.bundle
    if bundle is None:
        return [], []
    app_root = f"{settings.app_dir}/app"
    container["args"] = [*container["args"], "--search", app_root]
    container["env"].append(_env("PYTHONPATH", f"{app_root}:{settings.app_dir}/site"))
    container["volumeMounts"].append(
        {"name": APP_VOLUME, "mountPath": settings.app_dir, "readOnly": True}
    )
    volumes: list[Manifest] = [{"name": APP_VOLUME, "emptyDir": {}}]
    mounts: list[Manifest] = [
        {"name": APP_VOLUME, "mountPath": settings.app_dir},
        {"name": TMP_VOLUME, "mountPath": settings.tmp_dir},
        {"name": JOB_VOLUME, "mountPath": settings.job_dir, "readOnly": True},
    ]
    args = ["install-app", "--job", f"{settings.job_dir}/{JOB_FILE}", "--into", settings.app_dir]
    if bundle.config_map is not None:
        volumes.append({"name": BUNDLE_VOLUME, "configMap": {"name": bundle.config_map}})
        mounts.append({"name": BUNDLE_VOLUME, "mountPath": settings.bundle_dir, "readOnly": True})
        args += ["--bundle-dir", settings.bundle_dir]
    init: Manifest = {
        "name": INSTALL_CONTAINER,
        "image": container["image"],
        "imagePullPolicy": container["imagePullPolicy"],
        "command": list(settings.command),
        "args": args,
        "env": [
            _env("TMPDIR", settings.tmp_dir),
            _env("HOME", settings.tmp_dir),  # pip reads (and may write) ~/.config
            _env("PIP_NO_CACHE_DIR", "1"),
            *storage_env(job.spec.storage),
        ],
        "resources": container["resources"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }
    if "workingDir" in container:
        init["workingDir"] = container["workingDir"]
    return [init], volumes


def _pod(
    ref: JobRef,
    job: specs.MapReduceJob,
    role: str,
    index: int,
    attempt: int,
    args: list[str],
    env: list[Manifest],
    ports: list[Manifest],
    resources: specs.ResourceSpec,
    settings: Settings,
    extra_mounts: list[Manifest],
    extra_volumes: list[Manifest],
) -> Manifest:
    spec = job.spec
    name = pod_name(ref.name, role, index, attempt)
    pod_labels = {**labels(ref.name, settings, role, index), LABEL_ATTEMPT: str(attempt)}
    metadata = _metadata(ref, name, pod_labels)
    container: Manifest = {
        "name": role,
        "image": spec.image or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "args": args,
        "env": [
            _field_env(contract.ENV_POD_NAME, "metadata.name"),
            _field_env(contract.ENV_POD_IP, "status.podIP"),
            _env("TMPDIR", settings.tmp_dir),
            {
                "name": contract.ENV_TOKEN,
                "valueFrom": {"secretKeyRef": {"name": secret_name(ref.name), "key": TOKEN_KEY}},
            },
            *storage_env(spec.storage),
            *env,
        ],
        "ports": ports,
        "resources": _resources(resources),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": WORK_VOLUME, "mountPath": settings.work_dir},
            {"name": TMP_VOLUME, "mountPath": settings.tmp_dir},
            *extra_mounts,
            *(m.model_dump(by_alias=True, exclude_none=True) for m in spec.volume_mounts),
        ],
    }
    default_volumes, default_mounts = _default_volumes(spec, settings)
    container["volumeMounts"] += default_mounts
    if settings.pod_working_dir:
        container["workingDir"] = settings.pod_working_dir
    init_containers, bundle_volumes = _bundle_parts(ref, job, settings, container)
    if init_containers and not any(v["name"] == JOB_VOLUME for v in extra_volumes):
        bundle_volumes.append(_job_volume(ref))
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            # Volumes (a PVC, an emptyDir) are made group-writable for fsGroup, and only
            # walked when their root does not carry it yet: a large volume mounts fast.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": WORK_VOLUME, "emptyDir": {}},
            {"name": TMP_VOLUME, "emptyDir": {}},
            *extra_volumes,
            *bundle_volumes,
            *spec.volumes,
            *default_volumes,
        ],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def master_pod(ref: JobRef, job: specs.MapReduceJob, attempt: int, settings: Settings) -> Manifest:
    """The master: plans the job, schedules tasks, commits the output, serves /status."""
    job_path = f"{settings.job_dir}/{JOB_FILE}"
    pod = _pod(
        ref,
        job,
        MASTER,
        0,
        attempt,
        args=["master"],
        env=[
            _env(contract.ENV_JOB_FILE, job_path),
            _env(contract.ENV_MASTER_PORT, str(settings.master_port)),
            _env(contract.ENV_MONITORING_PORT, str(settings.monitoring_port)),
            _env(contract.ENV_STATUS_LINGER, str(settings.status_linger)),
            _env(contract.ENV_LOGS, f"kubectl logs -n {ref.namespace} {{worker}}"),
        ],
        ports=[
            {"name": "grpc", "containerPort": settings.master_port},
            _monitoring_port(settings),
        ],
        resources=job.spec.master.resources,
        settings=settings,
        extra_mounts=[{"name": JOB_VOLUME, "mountPath": settings.job_dir, "readOnly": True}],
        extra_volumes=[_job_volume(ref)],
    )
    pod["metadata"]["annotations"] = scrape_annotations(settings)
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "monitoring"},
        "periodSeconds": 2,
    }
    return pod


def worker_pod(
    ref: JobRef,
    job: specs.MapReduceJob,
    role: str,
    index: int,
    attempt: int,
    settings: Settings,
) -> Manifest:
    """A mapper or reducer: pulls tasks from the master until it is told to exit."""
    group = job.spec.mapper if role == MAPPER else job.spec.reducer
    ports = [{"name": "shuffle", "containerPort": settings.shuffle_port}] if role == MAPPER else []
    ports.append(_monitoring_port(settings))
    pod = _pod(
        ref,
        job,
        role,
        index,
        attempt,
        args=["worker"],
        env=[
            _env(contract.ENV_ROLE, role),
            _env(contract.ENV_MASTER, master_address(ref, settings)),
            _env(contract.ENV_SHUFFLE_PORT, str(settings.shuffle_port)),
            _env(contract.ENV_WORK_DIR, settings.work_dir),
            _env(contract.ENV_MONITORING_PORT, str(settings.monitoring_port)),
        ],
        ports=ports,
        resources=group.resources,
        settings=settings,
        extra_mounts=[],
        extra_volumes=[],
    )
    pod["metadata"]["annotations"] = scrape_annotations(settings)
    return pod


def pod(
    ref: JobRef,
    job: specs.MapReduceJob,
    role: str,
    index: int,
    attempt: int,
    settings: Settings,
) -> Manifest:
    """The pod of one slot (master, or a worker ``index`` of ``role``) and attempt."""
    if role == MASTER:
        return master_pod(ref, job, attempt, settings)
    return worker_pod(ref, job, role, index, attempt, settings)
