"""Pods on the localkube node agent: phases, exit codes, restarts, deletion, volumes, env."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psutil
import pytest
from localkube import apiclient, cluster, deadlines, workloads

pytestmark = pytest.mark.cluster


def create(kube: apiclient.ApiClient, namespace: str, manifest: apiclient.Obj) -> apiclient.Obj:
    return kube.create(apiclient.resource_path("pods", namespace), manifest)


def test_pod_that_writes_a_file_and_exits_0_succeeds(
    kube: apiclient.ApiClient, namespace: str, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import os
        with open("/data/out.txt", "w") as out:
            out.write(os.environ["POD_NAME"] + " " + os.environ["POD_NAMESPACE"])
        """
    )
    manifest = workloads.pod(
        "writer",
        workloads.python(code),
        extra={"volumes": [{"name": "data", "hostPath": {"path": str(tmp_path)}}]},
    )
    container = manifest["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    create(kube, namespace, manifest)
    pod = workloads.wait_for_pod(kube, namespace, "writer", ["Succeeded", "Failed"])
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert (tmp_path / "out.txt").read_text() == f"writer {namespace}"
    assert not Path("/data/out.txt").exists(), "the bind mount leaked onto the host"


def test_pod_that_exits_3_fails_with_exit_code_3(kube: apiclient.ApiClient, namespace: str) -> None:
    create(kube, namespace, workloads.pod("three", workloads.python("raise SystemExit(3)")))
    pod = workloads.wait_for_pod(kube, namespace, "three", ["Succeeded", "Failed"])
    assert pod["status"]["phase"] == "Failed"
    status = pod["status"]["containerStatuses"][0]
    assert status["state"]["terminated"]["exitCode"] == 3
    assert status["state"]["terminated"]["reason"] == "Error"
    assert status["restartCount"] == 0


def test_restart_policy_on_failure_restarts_and_counts(
    kube: apiclient.ApiClient, namespace: str, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import pathlib, sys
        counter = pathlib.Path("/state/attempts")
        attempts = int(counter.read_text() or 0) + 1 if counter.exists() else 1
        counter.write_text(str(attempts))
        print("attempt", attempts, flush=True)
        sys.exit(0 if attempts >= 3 else 1)
        """
    )
    manifest = workloads.pod(
        "flaky",
        workloads.python(code),
        restart_policy="OnFailure",
        extra={"volumes": [{"name": "state", "hostPath": {"path": str(tmp_path)}}]},
    )
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    create(kube, namespace, manifest)
    pod = workloads.wait_for_pod(kube, namespace, "flaky", ["Succeeded", "Failed"])
    assert pod["status"]["phase"] == "Succeeded"
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 2
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert (tmp_path / "attempts").read_text() == "3"


def test_deleting_a_running_pod_terminates_its_process(
    kube: apiclient.ApiClient, namespace: str, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import pathlib, signal, sys, time
        def stop(*_):
            pathlib.Path("/out/sigterm").write_text("received")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("serving", flush=True)
        time.sleep(600)
        """
    )
    manifest = workloads.pod(
        "sleeper",
        workloads.python(code),
        extra={"volumes": [{"name": "out", "hostPath": {"path": str(tmp_path)}}]},
    )
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
    create(kube, namespace, manifest)
    pod = workloads.wait_for_pod(kube, namespace, "sleeper", ["Running"])
    paths = cluster.layout.Layout.default()
    deadlines.poll(
        deadlines.POD_PHASE,
        lambda: True if "serving" in workloads.container_log(paths, pod) else None,
        "the sleeper to install its SIGTERM handler",
    )
    pid = workloads.container_pid(pod)
    assert psutil.pid_exists(pid)
    process = psutil.Process(pid)
    kube.delete(apiclient.resource_path("pods", namespace, "sleeper"))
    workloads.wait_gone(kube, apiclient.resource_path("pods", namespace, "sleeper"))
    deadlines.poll(
        deadlines.PROCESS_EXIT,
        lambda: True if not process.is_running() else None,
        f"process {pid} of the deleted pod to exit",
    )
    assert (tmp_path / "sigterm").read_text() == "received"


def test_pod_sees_downward_api_secret_and_config_map(
    kube: apiclient.ApiClient, namespace: str
) -> None:
    kube.create(
        apiclient.resource_path("secrets", namespace),
        {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}},
    )
    kube.create(
        apiclient.resource_path("configmaps", namespace),
        {"metadata": {"name": "settings"}, "data": {"mode": "fast", "app.conf": "x=1\n"}},
    )
    code = textwrap.dedent(
        """
        import os, pathlib, socket
        assert os.environ["TOKEN"] == "s3cret", os.environ.get("TOKEN")
        assert os.environ["MODE"] == "fast"
        assert os.environ["POD_IP"] == socket.gethostbyname(socket.gethostname())
        assert pathlib.Path("/etc/app/app.conf").read_text() == "x=1\\n"
        assert socket.gethostname() == "reader"
        token = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/token").read_text()
        assert token.count(".") == 2
        print("ok", os.environ["POD_IP"])
        """
    )
    manifest = workloads.pod(
        "reader",
        workloads.python(code),
        extra={"volumes": [{"name": "conf", "configMap": {"name": "settings"}}]},
    )
    container = manifest["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "conf", "mountPath": "/etc/app", "readOnly": True}]
    container["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    create(kube, namespace, manifest)
    pod = workloads.wait_for_pod(kube, namespace, "reader", ["Succeeded", "Failed"])
    assert pod["status"]["phase"] == "Succeeded", workloads.container_log(
        cluster.layout.Layout.default(), pod
    )
    assert pod["status"]["podIP"].startswith("10.213.")


def test_persistent_volume_claim_keeps_data_between_pods(
    kube: apiclient.ApiClient, namespace: str
) -> None:
    kube.create(
        apiclient.resource_path("persistentvolumeclaims", namespace),
        {
            "metadata": {"name": "shared"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    volumes = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]}
    mounts = [{"name": "data", "mountPath": "/var/lib/app"}]
    writer = workloads.pod(
        "pvc-writer",
        workloads.python("open('/var/lib/app/state', 'w').write('kept')"),
        extra=volumes,
    )
    writer["spec"]["containers"][0]["volumeMounts"] = mounts
    create(kube, namespace, writer)
    written = workloads.wait_for_pod(kube, namespace, "pvc-writer", ["Succeeded", "Failed"])
    assert written["status"]["phase"] == "Succeeded"
    reader = workloads.pod(
        "pvc-reader",
        workloads.python("assert open('/var/lib/app/state').read() == 'kept'"),
        extra=volumes,
    )
    reader["spec"]["containers"][0]["volumeMounts"] = mounts
    create(kube, namespace, reader)
    read = workloads.wait_for_pod(kube, namespace, "pvc-reader", ["Succeeded", "Failed"])
    assert read["status"]["phase"] == "Succeeded"
    claim = kube.get(apiclient.resource_path("persistentvolumeclaims", namespace, "shared"))
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "standard"


def test_readiness_probe_gates_the_ready_condition(
    kube: apiclient.ApiClient, namespace: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    manifest = workloads.pod("gated", workloads.python("import time; time.sleep(600)"))
    manifest["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["test", "-f", str(marker)]},
        "periodSeconds": 1,
    }
    create(kube, namespace, manifest)
    pod = workloads.wait_for_pod(kube, namespace, "gated", ["Running"])

    def ready(obj: apiclient.Obj) -> str:
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        return str(conditions["Ready"])

    assert ready(pod) == "False"
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    marker.touch()
    workloads.wait_for(
        "the pod to become Ready once its probe passes",
        lambda: True if ready(workloads.get_pod(kube, namespace, "gated")) == "True" else None,
    )
