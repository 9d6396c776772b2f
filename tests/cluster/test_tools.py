"""The built client tools against the cluster: kubectl and helm from .cluster/bin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from localkube import apiclient, build, workloads
from localkube import cluster as clusters

pytestmark = pytest.mark.cluster


def run(cluster: clusters.Cluster, *argv: str) -> str:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "KUBECONFIG": str(cluster.paths.kubeconfig),
            "HOME": str(cluster.paths.root),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_server_and_kubectl_report_the_pinned_kubernetes_version(
    cluster: clusters.Cluster,
) -> None:
    versions = json.loads(run(cluster, str(cluster.paths.kubectl), "version", "-o", "json"))
    assert versions["clientVersion"]["gitVersion"] == build.kubernetes_version()
    assert versions["serverVersion"]["gitVersion"] == build.kubernetes_version()


def test_helm_installs_and_uninstalls_a_chart(
    cluster: clusters.Cluster, kube: apiclient.ApiClient, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    helm = str(cluster.paths.helm)
    run(cluster, helm, "install", "probe", str(chart), "-n", namespace, "--set", "greeting=hi")
    made = kube.get(apiclient.resource_path("configmaps", namespace, "probe-greeting"))
    assert made["data"] == {"greeting": "hi"}
    assert "probe" in run(cluster, helm, "list", "-n", namespace, "-q")
    run(cluster, helm, "uninstall", "probe", "-n", namespace, "--wait")
    workloads.wait_gone(kube, apiclient.resource_path("configmaps", namespace, "probe-greeting"))


def test_kubectl_logs_reads_a_container_log_through_the_api_server(
    cluster: clusters.Cluster, kube: apiclient.ApiClient, namespace: str
) -> None:
    kube.create(
        apiclient.resource_path("pods", namespace),
        workloads.pod("talker", workloads.python("print('hello from the pod')")),
    )
    workloads.wait_for_pod(kube, namespace, "talker", ["Succeeded", "Failed"])
    kubectl = str(cluster.paths.kubectl)
    assert run(cluster, kubectl, "logs", "-n", namespace, "talker") == "hello from the pod\n"
