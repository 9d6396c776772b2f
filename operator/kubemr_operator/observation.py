"""Reading the cluster: a job's pods as :class:`lifecycle.PodView`, the master's report.

The I/O half of a reconciliation (the other half, acting, is in
:mod:`kubemr_operator.handlers`). Pods are matched by the job label *and* the job's
uid in their owner references, so the pods of an earlier job of the same name, still
being garbage-collected, are never mistaken for this one's.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import lightkube
from kubemr import contract
from lightkube.resources.core_v1 import Pod

from kubemr_operator import lifecycle, manifests
from kubemr_operator.manifests import JobRef
from kubemr_operator.settings import Settings


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _waiting_reason(status: Mapping[str, Any]) -> tuple[str, str]:
    """Why a pending pod does not run: the scheduler's verdict or the container's."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason") or "Unschedulable"), str(
                condition.get("message") or ""
            )
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason") or ""), str(waiting.get("message") or "")
    return "", ""


def pod_view(pod: Mapping[str, Any]) -> lifecycle.PodView | None:
    """The operator's view of one pod (None if it lacks the labels we give ours)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    try:
        role = labels[manifests.LABEL_ROLE]
        index = int(labels.get(manifests.LABEL_INDEX, "0"))
        attempt = int(labels.get(manifests.LABEL_ATTEMPT, "0"))
    except (KeyError, ValueError):
        return None
    created = lifecycle.parse_time(meta.get("creationTimestamp")) or now()
    phase = str(status.get("phase") or "Pending")
    exit_code: int | None = None
    reason, message = "", ""
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            exit_code = terminated.get("exitCode")
            reason = str(terminated.get("reason") or "")
            message = str(terminated.get("message") or "")
    install_failed = False
    for container in status.get("initContainerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if container.get("name") == manifests.INSTALL_CONTAINER and terminated.get("exitCode"):
            install_failed = True
            reason = lifecycle.APP_INSTALL_FAILED
            message = str(terminated.get("message") or "")
    if phase == "Pending" and not install_failed:
        reason, message = _waiting_reason(status)
    elif status.get("reason"):  # Evicted, DeadlineExceeded, NodeLost...
        reason, message = str(status["reason"]), str(status.get("message") or message)
    return lifecycle.PodView(
        name=str(meta.get("name")),
        role=role,
        index=index,
        attempt=attempt,
        phase=phase,
        created=created,
        deleting=bool(meta.get("deletionTimestamp")),
        ip=str(status.get("podIP") or ""),
        ready=any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ),
        exit_code=exit_code,
        reason=reason,
        message=message,
        install_failed=install_failed,
    )


async def pods(client: lightkube.AsyncClient, ref: JobRef) -> list[lifecycle.PodView]:
    """The pods this job owns."""
    views = []
    async for pod in client.list(
        Pod, namespace=ref.namespace, labels={manifests.LABEL_JOB: ref.name}
    ):
        raw = pod.to_dict()
        owners = (raw.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == ref.uid for o in owners):
            continue
        view = pod_view(raw)
        if view is not None:
            views.append(view)
    return views


async def master_report(
    http: aiohttp.ClientSession, pods: Sequence[lifecycle.PodView], settings: Settings
) -> contract.StatusReport | None:
    """The current master's ``/status`` document, or None if it cannot be read now (or is
    not a :class:`~kubemr.contract.StatusReport`)."""
    masters = sorted(
        (p for p in pods if p.role == manifests.MASTER and p.phase == "Running" and p.ip),
        key=lambda p: p.attempt,
    )
    if not masters or masters[-1].deleting:
        return None
    master = contract.host_port(masters[-1].ip, settings.monitoring_port)
    url = f"http://{master}{contract.STATUS_PATH}"
    try:
        async with http.get(url) as response:
            if response.status != 200:
                return None
            document = json.loads(await response.text())
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    return contract.read_status(document)
