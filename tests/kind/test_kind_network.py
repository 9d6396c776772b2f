"""The job's NetworkPolicy, enforced on the kind cluster (kube-router's firewall).

The operator gives every job a NetworkPolicy: the master and shuffle ports accept only the
job's own pods (by their ``kubemr.io/job`` label), the monitoring port anyone. Here two
idle pods of the same namespace try all three ports on the running job's master and a
mapper: one without the job's label must reach the monitoring port (so the path works)
and be refused the other two; one with the label (not owned by the job, so the operator
ignores it) must reach all three (so they are listening, and the label is what decides).
Meanwhile the job's own pods keep using them: the job, its reduces held until the probes
are done, then succeeds with the oracle's output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kindcluster import cluster
from kindjobs import (
    JobFolder,
    apply,
    faults_app,
    get_json,
    job_doc,
    kubectl,
    oracle,
    wait_maps,
    wait_phase,
)
from kubemr.contract import MASTER_PORT, MONITORING_PORT, SHUFFLE_PORT
from kubemr_operator.manifests import LABEL_JOB
from localkube import deadlines

from testjobs import sorted_output

pytestmark = [pytest.mark.kind, pytest.mark.timeout(600)]

PROBE = "probe"
INSIDER = "insider"
PROBE_READY = deadlines.Deadline("kind_probe_ready", 120.0)
ENFORCED = deadlines.Deadline("kind_policy_enforced", 60.0)
"""Seconds from the job's pods running to their policy being in force on their nodes."""
CONNECT_TIMEOUT = 3.0
"""Seconds one probe connection may take before it counts as blocked (a dropped SYN)."""
PROBE_SCRIPT = """
import json, socket, sys
result = {}
for target in sys.argv[2:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=float(sys.argv[1])).close()
        result[target] = "open"
    except OSError as error:
        result[target] = type(error).__name__
print(json.dumps(result))
"""


def probe_pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """An idle pod in the job's namespace running the kubemr image, owned by no job."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": PROBE,
                    "image": cluster.chart_image(),
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": cluster.RUNTIME_UID,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }


def pod_ip(tools: cluster.Tools, namespace: str, pod: str) -> str:
    return str(get_json(tools, "-n", namespace, "get", "pod", pod)["status"]["podIP"])


def connect(tools: cluster.Tools, namespace: str, pod: str, targets: list[str]) -> dict[str, str]:
    """What ``pod`` gets when it connects to each ``host:port``."""
    script = ["python", "-c", PROBE_SCRIPT, str(CONNECT_TIMEOUT), *targets]
    out = kubectl(tools, "-n", namespace, "exec", pod, "--", *script)
    return dict(json.loads(out))


def test_only_the_jobs_own_pods_reach_its_master_and_shuffle_ports(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    doc = job_doc("netpol", folder, faults_app(hold=f"{folder.node}/release"))
    name = apply(kind, namespace, doc)
    for pod, labels in ((PROBE, {"app": PROBE}), (INSIDER, {LABEL_JOB: name})):
        manifest = json.dumps(probe_pod(namespace, pod, labels))
        kubectl(kind, "-n", namespace, "apply", "-f", "-", stdin=manifest)
    kubectl(
        kind,
        *("-n", namespace, "wait", "--for=condition=Ready", f"pod/{PROBE}", f"pod/{INSIDER}"),
        f"--timeout={PROBE_READY.seconds:g}s",
    )
    wait_maps(kind, namespace, name, 2)  # master and mappers up, serving the job's pods
    master = pod_ip(kind, namespace, f"{name}-master")
    mapper = pod_ip(kind, namespace, f"{name}-mapper-0")
    open_to_all = f"{master}:{MONITORING_PORT}"
    job_only = [f"{master}:{MASTER_PORT}", f"{mapper}:{SHUFFLE_PORT}"]
    started = time.monotonic()
    seen: list[dict[str, str]] = []

    def enforced() -> dict[str, str] | None:
        result = connect(kind, namespace, PROBE, [open_to_all, *job_only])
        seen.append(result)
        return result if all(result[t] != "open" for t in job_only) else None

    result = deadlines.poll(
        ENFORCED, enforced, "the job's ports closed to a pod outside the job", interval=1.0
    )
    print(f"policy in force {time.monotonic() - started:.1f} s after the maps ran; {seen}")
    assert result[open_to_all] == "open", result
    inside = connect(kind, namespace, INSIDER, [open_to_all, *job_only])
    assert set(inside.values()) == {"open"}, inside
    (folder.host / "release").write_text("go\n")
    done = wait_phase(kind, namespace, name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert sorted_output(folder.host / "out") == oracle(tmp_path, doc, folder)
