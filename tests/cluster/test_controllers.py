"""The controller-manager on localkube: garbage collection and namespace deletion."""

from __future__ import annotations

import uuid

import pytest
from localkube import apiclient, deadlines, workloads

pytestmark = pytest.mark.cluster


def test_deleting_an_owner_garbage_collects_its_children(
    kube: apiclient.ApiClient, namespace: str
) -> None:
    owner = kube.create(
        apiclient.resource_path("configmaps", namespace), {"metadata": {"name": "owner"}}
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    kube.create(
        apiclient.resource_path("configmaps", namespace),
        {"metadata": {"name": "child", "ownerReferences": [reference]}},
    )
    child_pod = workloads.pod("child-pod", workloads.python("import time; time.sleep(600)"))
    child_pod["metadata"]["ownerReferences"] = [reference]
    kube.create(apiclient.resource_path("pods", namespace), child_pod)
    workloads.wait_for_pod(kube, namespace, "child-pod", ["Running"])
    kube.delete(
        apiclient.resource_path("configmaps", namespace, "owner"),
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    workloads.wait_gone(kube, apiclient.resource_path("configmaps", namespace, "child"))
    workloads.wait_gone(kube, apiclient.resource_path("pods", namespace, "child-pod"))


def test_deleting_a_namespace_with_a_running_pod_completes(kube: apiclient.ApiClient) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadlines.poll(
        deadlines.NAMESPACE_READY,
        lambda: kube.get(apiclient.resource_path("serviceaccounts", name, "default")),
        "the default service account",
    )
    kube.create(
        apiclient.resource_path("pods", name),
        workloads.pod("runner", workloads.python("import time; time.sleep(600)")),
    )
    workloads.wait_for_pod(kube, name, "runner", ["Running"])
    kube.delete(f"/api/v1/namespaces/{name}")
    workloads.wait_gone(kube, f"/api/v1/namespaces/{name}")
