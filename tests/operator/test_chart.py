"""The Helm chart (charts/kubemr) with the real helm against the real local API server.

`helm lint`; `helm template` accepted by the API server (server-side dry run, strict
field validation) with the default values and with every option on; bad values refused
by values.schema.json with the field named; and a real install: the operator runs as a
pod (the node agent runs the chart's command) with the chart's RBAC and service account,
the wordcount example reaches Succeeded with the oracle's output, `helm upgrade` rolls
the operator, `helm uninstall` leaves nothing of it behind.
"""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from localkube import apiclient, deadlines, layout
from localkube import cluster as clusters
from localkube.fixtures import dump, failed
from test_ha import PodPoller, holder, wait_leader
from test_jobs import FAULTS_APP, jobs_path, oracle, posted, submit, wait_for

from testjobs import ROOT, sorted_output

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "kubemr"
STUB_CRDS = Path(__file__).resolve().parent / "monitoring-crds.yaml"
OPERATOR_POD = deadlines.Deadline("operator_pod", 90.0)
RELEASE_GONE = deadlines.Deadline("release_gone", 90.0)
JOB_DONE = deadlines.Deadline("job_done_and_deleted", 240.0)

ALL_ON: dict[str, Any] = {
    "replicaCount": 2,
    "leaderElection": {"leaseName": "ops", "leaseDuration": 20, "renewDeadline": 12},
    "operator": {
        "watchNamespaces": ["team-a", "team-b"],
        "extraEnv": [{"name": "X", "value": "1"}],
    },
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}},
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {}}]},
    "nodeSelector": {"pool": "system"},
    "tolerations": [{"key": "system", "operator": "Exists"}],
    "affinity": {"nodeAffinity": {}},
    "priorityClassName": "system-cluster-critical",
    "podLabels": {"team": "batch"},
    "jobDefaults": {"image": {"repository": "registry.example/kubemr", "tag": "1"}},
}


def helm(paths: layout.Layout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(paths.helm), "--kubeconfig", str(paths.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def kubectl(paths: layout.Layout, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(paths.kubectl), "--kubeconfig", str(paths.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_helm_lint_passes(cluster: clusters.Cluster) -> None:
    result = helm(cluster.paths, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicaCount": -1}, "/replicaCount"),
        ({"leaderElection": {"retryPeriod": 0}}, "/leaderElection/retryPeriod"),
        ({"leaderElection": {"renewDeadline": 15}}, "leaderElection.renewDeadline"),
        ({"leaderElection": {"enabled": False}, "replicaCount": 2}, "leaderElection.enabled"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"operator": {"watchNamespaces": ["Not_A_Name"]}}, "/operator/watchNamespaces/0"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    cluster: clusters.Cluster, tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm(cluster.paths, "template", "t", str(CHART), "-f", str(path))
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_rendered_chart_is_accepted_by_the_api_server(
    cluster: clusters.Cluster, crd: str, namespace: str, tmp_path: Path, values: dict[str, Any]
) -> None:
    del crd
    paths = cluster.paths
    # prometheus-operator's kinds are not part of Kubernetes: stand-ins that accept any
    # object let the dry run check everything else of those manifests.
    applied = kubectl(paths, "apply", "--server-side", "-f", str(STUB_CRDS))
    assert applied.returncode == 0, applied.stderr
    for name in ("team-a", "team-b"):
        kubectl(paths, "create", "namespace", name)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    rendered = helm(paths, "template", "t", str(CHART), "-n", namespace, "-f", str(path))
    assert rendered.returncode == 0, rendered.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
    assert {"Deployment", "ServiceAccount"} <= set(kinds)
    if values:
        assert {
            "ServiceMonitor",
            "PodMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "Role",
            "PodDisruptionBudget",
        } <= set(kinds)
    else:
        assert "PodDisruptionBudget" not in kinds  # one replica: a PDB would block drains
    result = kubectl(
        paths,
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=rendered.stdout,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(kinds), result.stdout


@pytest.fixture
def release_namespace(
    request: pytest.FixtureRequest, kube: apiclient.ApiClient, cluster: clusters.Cluster
) -> Iterator[str]:
    """A namespace for the release and its jobs, outside the test operator's patterns."""
    name = f"test-chart-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    if failed(request.node):
        print(dump(kube, cluster.paths, name))
    helm(cluster.paths, "uninstall", "kubemr", "-n", name, "--wait", "--timeout", "60s")
    kube.delete(f"/api/v1/namespaces/{name}")


def install_release(paths: layout.Layout, namespace: str, *options: str) -> None:
    """`helm install kubemr` watching only ``namespace``, job pods in the repository root."""
    install = helm(
        paths,
        "install",
        "kubemr",
        str(CHART),
        "-n",
        namespace,
        "--set",
        f"operator.watchNamespaces={{{namespace}}}",
        "--set",
        f"jobDefaults.workingDir={ROOT}",
        *options,
    )
    assert install.returncode == 0, install.stderr


def upgrade_release(paths: layout.Layout, namespace: str, *values: str) -> None:
    """`helm upgrade kubemr` keeping the release's values, with ``values`` (``a.b=c``) set."""
    options = [option for value in values for option in ("--set", value)]
    upgrade = helm(
        paths, "upgrade", "kubemr", str(CHART), "-n", namespace, "--reuse-values", *options
    )
    assert upgrade.returncode == 0, upgrade.stderr


def operator_pods(kube: apiclient.ApiClient, namespace: str) -> list[dict[str, Any]]:
    pods = kube.items(apiclient.resource_path("pods", namespace))
    return [
        p
        for p in pods
        if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"
    ]


def running_operator(kube: apiclient.ApiClient, namespace: str, env: dict[str, str]) -> Any:
    def probe() -> dict[str, Any] | None:
        for pod in operator_pods(kube, namespace):
            container = pod["spec"]["containers"][0]
            values = {e["name"]: e.get("value") for e in container.get("env", [])}
            if pod["status"].get("phase") == "Running" and all(
                values.get(k) == v for k, v in env.items()
            ):
                return pod
        return None

    return deadlines.poll(OPERATOR_POD, probe, f"an operator pod running with {env}")


def test_install_run_a_job_upgrade_and_uninstall(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    crd: str,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    del crd
    paths, namespace = cluster.paths, release_namespace
    shared = ROOT / ".cache" / "operator-tests" / f"chart-{uuid.uuid4().hex[:6]}"
    shared.mkdir(parents=True)
    install_release(paths, namespace)
    pod = running_operator(kube, namespace, {"KUBEMR_OPERATOR_RECONCILE_INTERVAL": "2"})
    assert pod["spec"]["serviceAccountName"] == "kubemr"
    assert pod["spec"]["containers"][0]["command"] == ["kubemr-operator"]

    doc = yaml.safe_load((ROOT / "examples" / "wordcount-job.yaml").read_text())
    doc["spec"]["output"]["path"] = str(shared / "out")
    name = submit(kube, namespace, doc)
    job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)

    upgrade_release(paths, namespace, "operator.reconcileInterval=1")
    rolled = running_operator(kube, namespace, {"KUBEMR_OPERATOR_RECONCILE_INTERVAL": "1"})
    assert rolled["metadata"]["name"] != pod["metadata"]["name"]
    kube.delete(jobs_path(namespace, name))

    uninstall = helm(paths, "uninstall", "kubemr", "-n", namespace, "--wait")
    assert uninstall.returncode == 0, uninstall.stderr

    def nothing_left() -> bool | None:
        left = kubectl(
            paths,
            "get",
            "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,"
            "poddisruptionbudgets,configmaps",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/instance=kubemr",
            "-o",
            "name",
        )
        cluster_wide = kubectl(
            paths,
            "get",
            "clusterroles,clusterrolebindings",
            "-o",
            "name",
            "-l",
            "app.kubernetes.io/instance=kubemr",
        )
        names = (left.stdout + cluster_wide.stdout).split()
        return True if not names and not operator_pods(kube, namespace) else None

    deadlines.poll(RELEASE_GONE, nothing_left, "every resource of the release removed")


def test_helm_upgrade_mid_job_rolls_the_operators_and_disturbs_nothing(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    crd: str,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    """Two replicas; a job held mid-run by a gate file; `helm upgrade` with a new image
    tag and a new operator setting rolls both operator pods (the leader hands the Lease
    over as it stops). Pods listed every 100 ms throughout: never two of one slot, none
    recreated or replaced; the gate opens only once the new pods lead, and the job
    succeeds with the oracle's output."""
    del crd
    paths, namespace = cluster.paths, release_namespace
    shared = ROOT / ".cache" / "operator-tests" / f"upgrade-{uuid.uuid4().hex[:6]}"
    shared.mkdir(parents=True)
    install_release(paths, namespace, "--set", "replicaCount=2")
    running_operator(kube, namespace, {"KUBEMR_OPERATOR_RECONCILE_INTERVAL": "2"})
    wait_leader(kube, namespace, "kubemr")
    old = {p["metadata"]["name"] for p in operator_pods(kube, namespace)}

    gate = shared / "go"
    doc = yaml.safe_load((ROOT / "examples" / "wordcount-job.yaml").read_text())
    doc["metadata"]["name"] = "upgraded"
    doc["spec"]["output"]["path"] = str(shared / "out")
    doc["spec"]["app"] = {"module": FAULTS_APP, "args": {"delay": "0.0002", "hold": str(gate)}}
    name = submit(kube, namespace, doc)

    def running_with_workers() -> bool | None:
        job = kube.get(jobs_path(namespace, name)).get("status", {})
        pods = kube.items(apiclient.resource_path("pods", namespace))
        workers = [p for p in pods if p["metadata"].get("labels", {}).get("kubemr.io/job")]
        return True if job.get("phase") == "Running" and len(workers) >= 3 else None

    deadlines.poll(JOB_DONE, running_with_workers, "the job running with master and workers")
    poller = PodPoller(cluster, namespace, lease="kubemr")
    poller.start()
    try:
        upgrade_release(paths, namespace, "image.tag=0.1.1-upgrade", "operator.reconcileInterval=1")

        def rolled() -> str | None:
            pods = operator_pods(kube, namespace)
            names = {p["metadata"]["name"] for p in pods}
            leader = holder(kube, namespace, "kubemr").split("_", 1)[0]
            done = len(pods) == 2 and not names & old and leader in names
            running = all(p["status"].get("phase") == "Running" for p in pods)
            return leader if done and running else None

        leader = deadlines.poll(RELEASE_GONE, rolled, "both operator pods replaced, one leading")
        job = kube.get(jobs_path(namespace, name))
        assert job["status"]["phase"] == "Running", job["status"]  # the gate still holds it
        gate.touch()
        job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
    finally:
        poller.done.set()
        poller.join()
    assert poller.error is None, poller.error
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert poller.duplicates == [], poller.duplicates
    holders = [h for h, _, _ in poller.leases]
    print(f"upgrade: lease holders in turn {holders}; new leader {leader}")
    for (before, released, _), (after, taken, _) in itertools.pairwise(poller.leases):
        if not before and after:  # released by the stopping leader, then taken
            gap = datetime.datetime.fromisoformat(taken) - datetime.datetime.fromisoformat(released)
            print(f"upgrade: lease released, taken by {after} {gap.total_seconds():.2f} s later")
    pod = next(p for p in operator_pods(kube, namespace) if p["metadata"]["name"] == leader)
    assert pod["spec"]["containers"][0]["image"].endswith(":0.1.1-upgrade")


# Granted, but reached only on rare paths a test cannot provoke on purpose; each with why.
RARELY_USED = {
    ("", "pods", "get"): "adopting a pod whose create answered 409 although the operator's "
    "list did not show it (a list racing a create of a restarted operator)",
}


def granted_rules(paths: layout.Layout, namespace: str) -> set[tuple[str, str, str]]:
    rendered = helm(
        paths,
        "template",
        "kubemr",
        str(CHART),
        "-n",
        namespace,
        "--set",
        f"operator.watchNamespaces={{{namespace}}}",
    )
    assert rendered.returncode == 0, rendered.stderr
    granted = set()
    for doc in yaml.safe_load_all(rendered.stdout):
        if doc and doc["kind"] == "Role":
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            granted.add((group, resource, verb))
    return granted


def audited_calls(paths: layout.Layout, user: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    used: set[tuple[str, str, str]] = set()
    denied = []
    for line in paths.audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") != user or "objectRef" not in event:
            continue
        ref = event["objectRef"]
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        call = (ref.get("apiGroup", ""), resource, event["verb"])
        if event.get("responseStatus", {}).get("code") == 403:
            denied.append(str(call))
        else:
            used.add(call)
    return used, denied


def test_the_operator_is_granted_exactly_what_it_calls(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    crd: str,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    """Derive every call of the chart's operator from the API server's audit log over a
    job that exercises every path (replacement of a deleted master, TTL, DeleteAll), and
    compare with its Role; also the job pods' service account can do nothing."""
    del crd
    paths, namespace = cluster.paths, release_namespace
    install_release(paths, namespace)
    running_operator(kube, namespace, {})
    shared = ROOT / ".cache" / "operator-tests" / f"rbac-{uuid.uuid4().hex[:6]}"
    shared.mkdir(parents=True)
    doc = yaml.safe_load((ROOT / "examples" / "wordcount-job.yaml").read_text())
    doc["metadata"]["name"] = "rbac"
    doc["spec"]["output"]["path"] = str(shared / "out")
    gate = shared / "go"  # the job cannot finish before its master was replaced
    doc["spec"]["app"] = {"module": FAULTS_APP, "args": {"delay": "0.0002", "hold": str(gate)}}
    doc["spec"]["ttlSecondsAfterFinished"] = 0
    doc["spec"]["cleanupPolicy"] = "DeleteAll"
    name = submit(kube, namespace, doc)

    def master_running() -> bool | None:
        status = kube.get(jobs_path(namespace, name)).get("status", {})
        return True if status.get("phase") == "Running" else None

    deadlines.poll(OPERATOR_POD, master_running, "the job running")
    kube.delete(apiclient.resource_path("pods", namespace, f"{name}-master"))
    posted(kube, namespace, name, "MasterReplaced")
    gate.touch()

    def deleted() -> bool | None:
        try:
            kube.get(jobs_path(namespace, name))
        except apiclient.ApiError as error:
            return True if apiclient.is_not_found(error) else None
        return None

    deadlines.poll(JOB_DONE, deleted, "the job finished and deleted by its TTL")
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    used, denied = audited_calls(paths, f"system:serviceaccount:{namespace}:kubemr")
    assert not denied, f"the operator was refused: {denied}"
    granted = granted_rules(paths, namespace)
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
    unused = granted - used - set(RARELY_USED)
    assert not unused, f"granted but never called: {sorted(unused)}"

    can = kubectl(
        paths,
        "auth",
        "can-i",
        "--list",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:default",
    )
    assert can.returncode == 0, can.stderr
    rows = [line.split()[0] for line in can.stdout.splitlines()[1:] if line.split()]
    resources = [r for r in rows if not r.startswith("[") and "selfsubject" not in r]
    assert resources == [], f"job pods' service account may touch the API: {resources}"
