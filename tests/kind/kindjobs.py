"""What the kind tier's tests share: kubectl, a namespace's dump, and MapReduceJobs whose
input, output and fault app live in the folder every node mounts (``.kind/data``).

Pods see ``.kind/data`` at ``/kubemr-data`` (kind-config.yaml); the tests see it in the
checkout. Each job gets its own folder there, owned by the image's UID, and its output is
compared with a sequential run of the same app over the same files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kindcluster import cluster, layout
from localkube import deadlines

from testjobs import ROOT, run_cli, sorted_output, word_input, write_manifest

NODE_DATA = "/kubemr-data"
"""Where every node (and so every pod with the data volume) sees ``.kind/data``."""
FAULTS_APP = ROOT / "tests" / "operator" / "apps" / "podfaults.py"
JOB_DONE = deadlines.Deadline("kind_job_done", 600.0)
"""Seconds a test job may take from apply to a final phase on kind."""
JOB_STATE = deadlines.Deadline("kind_job_state", 180.0)
"""Seconds to wait for a job to reach the state a test acts on."""


def kubectl(tools: cluster.Tools, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*tools.kubectl_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def get_json(tools: cluster.Tools, *args: str) -> Any:
    return json.loads(kubectl(tools, *args, "-o", "json"))


def dump(tools: cluster.Tools, namespace: str) -> str:
    """The namespace's jobs, pods and events, each pod's log tail and the operator's."""
    parts = [kubectl(tools, "-n", namespace, "get", "mrj,pods,events", "-o", "wide")]
    for pod in get_json(tools, "-n", namespace, "get", "pods")["items"]:
        name = pod["metadata"]["name"]
        logs = subprocess.run(
            [*tools.kubectl_command(), "-n", namespace, "logs", name, "--tail", "40"],
            capture_output=True,
            text=True,
            check=False,
        )
        parts.append(f"--- {name}\n{logs.stdout}{logs.stderr}")
    operator = subprocess.run(
        [*tools.kubectl_command(), "-n", cluster.NAMESPACE, "logs", "deploy/kubemr", "--tail=60"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "\n".join(parts) + f"\n--- operator\n{operator.stdout}"


@dataclass(frozen=True)
class JobFolder:
    """One job's folder under ``.kind/data``: ``host`` here, ``node`` in the pods."""

    host: Path
    node: str

    @classmethod
    def create(cls) -> JobFolder:
        name = f"job-{uuid.uuid4().hex[:8]}"
        host = layout.DATA / name
        (host / "in").mkdir(parents=True)
        apps = layout.DATA / "apps"
        apps.mkdir(exist_ok=True)
        shutil.copyfile(FAULTS_APP, apps / FAULTS_APP.name)
        if os.geteuid() == 0:
            os.chown(host, cluster.RUNTIME_UID, cluster.RUNTIME_UID)
        else:
            host.chmod(0o777)
        return cls(host, f"{NODE_DATA}/{name}")

    def remove(self) -> None:
        shutil.rmtree(self.host, ignore_errors=True)


def faults_app(**args: str) -> dict[str, Any]:
    """tests/operator/apps/podfaults.py as the pods see it, with its arguments."""
    return {"module": f"{NODE_DATA}/apps/{FAULTS_APP.name}:PodFaults", "args": args}


def job_doc(name: str, folder: JobFolder, app: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A small word count over generated files in ``folder``, every pod seeing the data."""
    files = word_input(folder.host / "in", files=4, lines=400)
    paths = [f"{folder.node}/in/{Path(f).name}" for f in files]
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": {
            "app": app,
            "input": {"paths": paths, "splitSize": "4Ki"},
            "output": {"path": f"{folder.node}/out"},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 1},
            "volumes": [{"name": "data", "hostPath": {"path": NODE_DATA, "type": "Directory"}}],
            "volumeMounts": [{"name": "data", "mountPath": NODE_DATA}],
            **spec,
        },
    }


def apply(tools: cluster.Tools, namespace: str, doc: dict[str, Any]) -> str:
    kubectl(tools, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(doc))
    return str(doc["metadata"]["name"])


def job(tools: cluster.Tools, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_json(tools, "-n", namespace, "get", "mrj", name))


def wait_phase(
    tools: cluster.Tools,
    namespace: str,
    name: str,
    phases: tuple[str, ...] = ("Succeeded", "Failed"),
    deadline: deadlines.Deadline = JOB_DONE,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        current = job(tools, namespace, name)
        return current if current.get("status", {}).get("phase") in phases else None

    return deadlines.poll(
        deadline,
        probe,
        f"job {namespace}/{name} in phase {phases}",
        interval=1.0,
        describe=lambda: dump(tools, namespace),
    )


def wait_maps(tools: cluster.Tools, namespace: str, name: str, maps: int) -> None:
    def probe() -> bool | None:
        status = job(tools, namespace, name).get("status", {})
        return True if status.get("mapsDone", 0) >= maps else None

    deadlines.poll(
        JOB_STATE,
        probe,
        f"job {name} with at least {maps} map tasks done",
        interval=0.5,
        describe=lambda: dump(tools, namespace),
    )


def events(tools: cluster.Tools, namespace: str, name: str) -> list[tuple[str, str]]:
    items = get_json(tools, "-n", namespace, "get", "events")["items"]
    return [
        (str(e.get("reason")), str(e.get("message")))
        for e in items
        if e.get("involvedObject", {}).get("kind") == "MapReduceJob"
        and e.get("involvedObject", {}).get("name") == name
    ]


def oracle(tmp_path: Path, doc: dict[str, Any], folder: JobFolder) -> list[str]:
    """The same app over the same files, sequentially, with this machine's paths."""
    local = copy.deepcopy(doc)
    for key in ("volumes", "volumeMounts", "activeDeadlineSeconds", "suspend", "image"):
        local["spec"].pop(key, None)
    for group in ("mapper", "reducer"):
        local["spec"][group].pop("resources", None)
    local["spec"]["input"]["paths"] = [
        str(folder.host / p.removeprefix(folder.node + "/")) for p in doc["spec"]["input"]["paths"]
    ]
    local["spec"]["app"] = {**doc["spec"]["app"]}
    if "module" in local["spec"]["app"]:
        local["spec"]["app"]["module"] = f"{FAULTS_APP}:PodFaults"
    return oracle_of(tmp_path, local)


def oracle_of(tmp_path: Path, local: dict[str, Any]) -> list[str]:
    """The sorted output of ``kubemr run --sequential`` of a manifest with local paths."""
    local = {**local, "spec": {**local["spec"]}}
    local["spec"]["output"] = {"path": str(tmp_path / "oracle"), "overwrite": True}
    result = run_cli("run", "--sequential", "--quiet", str(write_manifest(tmp_path, local)))
    assert result.returncode == 0, result.stderr
    return sorted_output(tmp_path / "oracle")
