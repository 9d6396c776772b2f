"""The kopf handlers: observe, decide (:mod:`kubemr_operator.lifecycle`), act.

One timer per MapReduceJob reconciles it every ``reconcile_interval`` seconds: it lists
the pods the job owns, reads the master's ``/status`` when a master runs, asks
:func:`lifecycle.decide` what to do, and does it: create-or-adopt the ConfigMap, Secret,
Service and pods (deterministic names: a 409 on an object we own is adoption, on one we
do not own a retryable error), delete pods, post events, and patch the status. Handlers
stay thin; every decision is in the pure core.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import lightkube
from kubemr import contract
from kubemr import spec as specs
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy

from kubemr_operator import lifecycle, manifests, observation
from kubemr_operator.manifests import JobRef
from kubemr_operator.metrics import OperatorMetrics
from kubemr_operator.settings import Settings

log = logging.getLogger("kubemr.operator")

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

MapReduceJobResource = create_namespaced_resource(
    contract.GROUP, contract.VERSION, contract.KIND, contract.PLURAL
)


class Runtime:
    """What the handlers share: settings, the API client, an HTTP session, metrics, and
    whether this replica may act (it leads, or runs alone)."""

    def __init__(self, settings: Settings, metrics: OperatorMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.may_act: Callable[[], bool] = lambda: True
        """Asked before every reconciliation: false once a leader's renewals are overdue
        (:func:`kubemr_operator.election.still_leading`), even if the process was paused
        past the moment it should have stopped."""
        self.reconciled = False
        """Whether this process has reconciled a job yet (logged once: the takeover's end)."""
        self._client: lightkube.AsyncClient | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def client(self) -> lightkube.AsyncClient:
        if self._client is None:
            self._client = lightkube.AsyncClient(field_manager="kubemr-operator")
        return self._client

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.status_timeout)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._client is not None:
            await self._client.close()
            self._client = None


def _parse(
    body: Mapping[str, Any], settings: Settings
) -> tuple[specs.MapReduceJob | None, tuple[str, ...]]:
    meta = body.get("metadata", {})
    document = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": body.get("spec"),
    }
    try:
        job = specs.parse_job(document, f"{specs.KIND} {meta.get('name')}")
    except specs.SpecError as error:
        return None, tuple(error.problems)
    problems = manifests.path_problems(job.spec, settings)
    return (None, problems) if problems else (job, ())


_RESOURCES: dict[str, Any] = {
    "Pod": Pod,
    "Service": Service,
    "Secret": Secret,
    "ConfigMap": ConfigMap,
    "NetworkPolicy": NetworkPolicy,
}


async def _create(
    runtime: Runtime, manifest: dict[str, Any], ref: JobRef
) -> lifecycle.Refusal | None:
    """Create, or adopt what we created before; refuse a name held by someone else.

    A 4xx answer (admission, quota, an invalid field) is returned as a refusal for the
    core to judge; anything else (the API server unreachable, a 5xx) raises and the
    reconciliation is retried."""
    kind = manifest["kind"]
    name = manifest["metadata"]["name"]
    try:
        await runtime.client.create(codecs.from_dict(manifest))
    except lightkube.ApiError as error:
        code = error.status.code or 0
        if code != 409:
            if 400 <= code < 500:
                return lifecycle.Refusal(kind, name, code, error.status.message or "")
            raise
        existing: Any = await runtime.client.get(_RESOURCES[kind], name, namespace=ref.namespace)
        owners = existing.metadata.ownerReferences if existing.metadata else None
        if not any(o.uid == ref.uid for o in owners or []):
            raise kopf.TemporaryError(
                f"{kind} {ref.namespace}/{name} exists and is not owned by this job "
                "(left from an earlier job of the same name?)",
                delay=5,
            ) from error
    return None


async def _delete(runtime: Runtime, resource: Any, name: str, namespace: str) -> None:
    try:
        await runtime.client.delete(resource, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code != 404:
            raise


async def _create_all(
    runtime: Runtime, decision: lifecycle.Decision, ref: JobRef, job: specs.MapReduceJob | None
) -> list[lifecycle.Refusal]:
    """Create what ``decision`` asks for: the support objects one by one, then the pods in
    :func:`lifecycle.slow_start` batches; stop after the first refusal (the first in order of a
    batch, whose other creations were already sent) or error."""
    if job is None:
        return []
    settings = runtime.settings
    if decision.ensure_support:
        for manifest in (
            manifests.config_map(ref, job, settings),
            manifests.secret(ref, secrets.token_hex(32), settings),
            manifests.service(ref, settings),
            manifests.network_policy(ref, settings),
        ):
            refusal = await _create(runtime, manifest, ref)
            if refusal is not None:
                return [refusal]
    slots = decision.create
    done = 0
    for size in lifecycle.slow_start(len(slots), settings.create_concurrency):
        batch = slots[done : done + size]
        done += size
        outcomes = await asyncio.gather(
            *(
                _create(runtime, manifests.pod(ref, job, s.role, s.index, s.attempt, settings), ref)
                for s in batch
            ),
            return_exceptions=True,
        )
        for slot, outcome in zip(batch, outcomes, strict=True):
            if outcome is None and slot.attempt > 0:
                runtime.metrics.pod_replacements.labels(ref.namespace, slot.role).inc()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is not None:
                return [outcome]
    return []


async def _act(
    runtime: Runtime, decision: lifecycle.Decision, ref: JobRef, body: kopf.Body
) -> None:
    """Post the decision's events and delete what it gives up."""
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    for name in decision.delete:
        await _delete(runtime, Pod, name, ref.namespace)
    if decision.delete_support:
        await _delete(runtime, Service, manifests.service_name(ref.name), ref.namespace)
        await _delete(
            runtime, NetworkPolicy, manifests.network_policy_name(ref.name), ref.namespace
        )
        await _delete(runtime, Secret, manifests.secret_name(ref.name), ref.namespace)
        await _delete(runtime, ConfigMap, manifests.config_map_name(ref.name), ref.namespace)
    if decision.delete_job:
        await _delete(runtime, MapReduceJobResource, ref.name, ref.namespace)


async def reconcile(
    runtime: Runtime, body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger
) -> None:
    """Observe one job, decide, act, and write the status."""
    if not runtime.may_act():
        log.warning(
            "%s/%s: not reconciled: this replica no longer leads",
            body.metadata.namespace,
            body.metadata.name,
        )
        return
    if not runtime.reconciled:
        runtime.reconciled = True
        log.info("first reconciliation by this process")
    started = time.perf_counter()
    meta = body.metadata
    ref = JobRef(str(meta.name), str(meta.namespace), str(meta.uid))
    job, problems = _parse(body, runtime.settings)
    view = lifecycle.JobView(
        name=ref.name,
        namespace=ref.namespace,
        uid=ref.uid,
        generation=int(meta.get("generation") or 0),
        job=job,
        problems=problems,
        status=dict(body.status),
    )
    try:
        pods = await observation.pods(runtime.client, ref)
        report = await observation.master_report(runtime.http, pods, runtime.settings)
        observed = lifecycle.Observed(
            view, pods, report, observation.now(), runtime.settings.monitoring_port
        )
        decision = lifecycle.decide(observed)
        refusals = await _create_all(runtime, decision, ref, job)
        decision = lifecycle.after_create(observed, decision, refusals)
        for event in decision.events:
            if event.reason == lifecycle.FAILED_CREATE:
                log.warning(
                    "%s/%s: the API server refused to create an object: %s",
                    ref.namespace,
                    ref.name,
                    event.message,
                )
        await _act(runtime, decision, ref, body)
    except Exception:
        runtime.metrics.reconcile_errors.labels(ref.namespace).inc()
        raise
    finally:
        runtime.metrics.reconcile_seconds.observe(time.perf_counter() - started)
    phase_before = body.status.get("phase")
    for key, value in decision.status.items():
        if body.status.get(key) != value:
            patch.status[key] = value
    for key in body.status:
        if key not in decision.status:
            patch.status[key] = None  # dropped by the decision (a merge patch deletes it)
    phase = decision.status.get("phase")
    runtime.metrics.job_phase(ref.namespace, ref.name, str(phase or lifecycle.PENDING))
    if phase != phase_before:
        logger.info("phase %s -> %s: %s", phase_before, phase, decision.status.get("message"))
    if problems and phase_before != lifecycle.FAILED:
        raise kopf.PermanentError("invalid spec: " + "; ".join(problems))


def _needs_work(status: Mapping[str, Any], spec: Mapping[str, Any], **_: Any) -> bool:
    """Skip finished, cleaned-up jobs that have no TTL to wait for."""
    return not (status.get("cleanedUp") and spec.get("ttlSecondsAfterFinished") is None)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Register the handlers on ``registry`` with the runtime's settings."""

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Log lines are not events: the decisions post their own (kopf.event), and a
        # "Timer succeeded" event per job every reconcile_interval only loads the API server.
        settings.posting.level = logging.WARNING
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubemr.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kubemr.io")
        settings.watching.server_timeout = 300
        # Watching named namespaces needs no discovery of namespaces or CRDs (and a
        # namespaced Role does not allow it): only globs and cluster-wide scan.
        named = runtime.settings.namespaces
        settings.scanning.disabled = bool(named) and not any(c in n for n in named for c in "*?!,")

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod, its service account; elsewhere, the kubeconfig ($KUBECONFIG)."""
        token = SERVICE_ACCOUNT / "token"
        if runtime.settings.api_server is not None and token.exists():
            namespace = SERVICE_ACCOUNT / "namespace"
            return kopf.ConnectionInfo(
                server=runtime.settings.api_server,
                ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
                scheme="Bearer",
                token=token.read_text(encoding="utf-8").strip(),
                default_namespace=(
                    namespace.read_text(encoding="utf-8").strip() if namespace.exists() else None
                ),
            )
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.timer(
        contract.GROUP,
        contract.VERSION,
        contract.PLURAL,
        id="reconcile",
        interval=runtime.settings.reconcile_interval,
        initial_delay=0,
        when=_needs_work,
        registry=registry,
    )
    async def _reconcile(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
        await reconcile(runtime, body, patch, logger)

    @kopf.on.delete(
        contract.GROUP, contract.VERSION, contract.PLURAL, optional=True, registry=registry
    )
    async def _forget(body: kopf.Body, **_: Any) -> None:
        runtime.metrics.job_deleted(body)
