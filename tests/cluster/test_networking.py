"""Pod networking: own IPs, Service names resolving to pods, the API server from a pod."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from localkube import apiclient, cluster, network, workloads

pytestmark = pytest.mark.cluster


def test_two_pods_talk_through_a_service_name(
    kube: apiclient.ApiClient, namespace: str, cluster: cluster.Cluster
) -> None:
    server = workloads.pod(
        "web",
        ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
        restart_policy="Always",
        labels={"app": "web"},
    )
    server["spec"]["containers"][0]["env"] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    kube.create(apiclient.resource_path("pods", namespace), server)
    kube.create(
        apiclient.resource_path("services", namespace),
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    )
    code = textwrap.dedent(
        f"""
        import time, urllib.request
        deadline = time.monotonic() + 60
        for url in ("http://web.{namespace}.svc:8080/", "http://web:8080/",
                    "http://web.{namespace}.svc.cluster.local:8080/"):
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        print(url, answer.status, flush=True)
                        break
                except OSError as error:
                    if time.monotonic() > deadline:
                        raise
                    print(url, "not yet:", error, flush=True)
                    time.sleep(0.5)
        """
    )
    kube.create(
        apiclient.resource_path("pods", namespace), workloads.pod("client", ["python", "-c", code])
    )
    done = workloads.wait_for_pod(kube, namespace, "client", ["Succeeded", "Failed"])
    web = workloads.get_pod(kube, namespace, "web")
    log = workloads.container_log(cluster.paths, done)
    assert done["status"]["phase"] == "Succeeded", log
    assert f"http://web.{namespace}.svc:8080/ 200" in log
    assert web["status"]["podIP"] != done["status"]["podIP"]


def test_pod_reaches_the_api_server_with_its_service_account_token(
    kube: apiclient.ApiClient, namespace: str, cluster: cluster.Cluster
) -> None:
    code = textwrap.dedent(
        """
        import json, os, ssl, urllib.request
        secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
        token = open(secrets + "/token").read()
        context = ssl.create_default_context(cafile=secrets + "/ca.crt")
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        request = urllib.request.Request(
            f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            data=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                             "kind": "SelfSubjectReview"}).encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            review = json.load(answer)
        print(review["status"]["userInfo"]["username"])
        """
    )
    kube.create(
        apiclient.resource_path("pods", namespace),
        workloads.pod("incluster", ["python", "-c", code]),
    )
    pod = workloads.wait_for_pod(kube, namespace, "incluster", ["Succeeded", "Failed"])
    log = workloads.container_log(cluster.paths, pod)
    assert pod["status"]["phase"] == "Succeeded", log
    assert f"system:serviceaccount:{namespace}:default" in log


def test_the_bridge_keeps_its_mac_address_as_pods_come_and_go(
    kube: apiclient.ApiClient, namespace: str, cluster: cluster.Cluster
) -> None:
    """A bridge whose MAC was not set takes its lowest port's and changes it when that
    pod goes; the other pods' ARP entries for the gateway then point nowhere and they
    lose the API server for tens of seconds. Set by hand (addr_assign_type 3,
    NET_ADDR_SET), the kernel never changes it."""
    sysfs = Path("/sys/class/net") / network.BRIDGE
    for index in range(3):
        pod = workloads.pod(f"brief-{index}", ["true"])
        kube.create(apiclient.resource_path("pods", namespace), pod)
    for index in range(3):
        workloads.wait_for_pod(kube, namespace, f"brief-{index}", ["Succeeded"])
        kube.delete(apiclient.resource_path("pods", namespace, f"brief-{index}"))
    for index in range(3):
        workloads.wait_gone(kube, apiclient.resource_path("pods", namespace, f"brief-{index}"))
    assert (sysfs / "address").read_text().strip() == network.BRIDGE_MAC
    assert (sysfs / "addr_assign_type").read_text().strip() == "3"
