"""Test pods and the waits on them, for cluster tests.

``pod(...)`` builds a manifest as a dict (no YAML templates); the ``wait_*``
functions poll the API with named deadlines from :mod:`localkube.deadlines`;
``container_log`` reads what the node agent recorded of a container's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localkube import apiclient, deadlines, layout


def pod(
    name: str,
    command: Sequence[str],
    *,
    restart_policy: str = "Never",
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> apiclient.Obj:
    """A one-container pod that runs ``command`` (resolved with the project's venv first)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": "kubemr-local",
        "command": list(command),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    manifest: apiclient.Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
        },
    }
    manifest["spec"].update(extra or {})
    return manifest


def python(code: str) -> list[str]:
    """A command running ``code`` with the venv's interpreter (``python`` on the pod PATH)."""
    return ["python", "-c", code]


def get_pod(client: apiclient.ApiClient, namespace: str, name: str) -> apiclient.Obj:
    return client.get(apiclient.resource_path("pods", namespace, name))


def wait_for_pod(
    client: apiclient.ApiClient,
    namespace: str,
    name: str,
    phases: Sequence[str],
    deadline: deadlines.Deadline = deadlines.POD_PHASE,
) -> apiclient.Obj:
    """Poll until the pod's phase is one of ``phases``; return the pod."""
    seen: list[str] = []

    def probe() -> apiclient.Obj | None:
        current = get_pod(client, namespace, name)
        phase = current.get("status", {}).get("phase", "")
        seen[:] = [f"phase={phase} status={current.get('status')}"]
        return current if phase in phases else None

    return deadlines.poll(
        deadline,
        probe,
        f"pod {namespace}/{name} to reach {'/'.join(phases)}",
        describe=lambda: seen[0] if seen else "no pod",
    )


def wait_for(
    what: str,
    probe: Any,
    deadline: deadlines.Deadline = deadlines.POD_PHASE,
) -> Any:
    return deadlines.poll(deadline, probe, what)


def wait_gone(
    client: apiclient.ApiClient, path: str, deadline: deadlines.Deadline = deadlines.OBJECT_GONE
) -> None:
    """Poll until GET ``path`` answers 404."""

    def probe() -> bool | None:
        try:
            client.get(path)
        except apiclient.ApiError as error:
            if error.status == 404:
                return True
            raise
        return None

    deadlines.poll(deadline, probe, f"{path} to be gone")


def pod_dir(paths: layout.Layout, pod_obj: apiclient.Obj) -> Path:
    metadata = pod_obj["metadata"]
    return paths.pods / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}"


def container_log(paths: layout.Layout, pod_obj: apiclient.Obj, container: str = "main") -> str:
    """Everything the container printed, all restarts in order."""
    logs = pod_dir(paths, pod_obj) / "logs" / container
    if not logs.is_dir():
        return ""
    files = sorted(logs.glob("*.log"), key=lambda p: int(p.stem))
    return "".join(f.read_text(errors="replace") for f in files)


def container_pid(pod_obj: apiclient.Obj, container: str = "main") -> int:
    for status in pod_obj.get("status", {}).get("containerStatuses", []):
        if status["name"] == container and status.get("containerID"):
            return int(str(status["containerID"]).removeprefix("localkube://"))
    raise LookupError(f"container {container} of {pod_obj['metadata']['name']} has no process")
