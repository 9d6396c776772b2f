"""MapReduceJobs run by the real operator on the local control plane.

Every test owns a namespace the operator watches; jobs run as real pods (processes of
the node agent) and every successful output is compared, sorted, with a sequential run
of the same app. Faults come from a purpose-built app (apps/podfaults.py) that makes
chosen pods crash or crawl.
"""

from __future__ import annotations

import copy
import gzip
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubemr import statusui
from localkube import apiclient, deadlines
from localkube import cluster as clusters

from localoperator import LocalOperator
from testjobs import BOOKS, ROOT, run_cli, sorted_output, word_input, write_manifest

pytestmark = pytest.mark.cluster

JOB_FINISHED = deadlines.Deadline("job_finished", 180.0)
JOB_PHASE = deadlines.Deadline("job_phase", 60.0)
PODS_GONE = deadlines.Deadline("pods_gone", 60.0)
EVENT_POSTED = deadlines.Deadline("event_posted", 30.0)
"""kopf posts events from a queue of its own, after the status patch that a test waits
for: an event is awaited, not read at once."""
FAULTS_APP = "tests/operator/apps/podfaults.py:PodFaults"


def jobs_path(namespace: str, name: str = "") -> str:
    path = f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs"
    return f"{path}/{name}" if name else path


def submit(kube: apiclient.ApiClient, namespace: str, doc: dict[str, Any]) -> str:
    body = copy.deepcopy(doc)
    body["metadata"]["namespace"] = namespace
    kube.create(jobs_path(namespace), body)
    return str(body["metadata"]["name"])


def job_doc(
    name: str, app: dict[str, Any], paths: list[str], output: str, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": {
            "app": app,
            "input": {"paths": paths, "splitSize": "8Ki"},
            "output": {"path": output},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 1},
            **spec,
        },
    }


def wait_for(
    kube: apiclient.ApiClient,
    namespace: str,
    name: str,
    phases: tuple[str, ...],
    deadline: deadlines.Deadline = JOB_FINISHED,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        job = kube.get(jobs_path(namespace, name))
        return job if job.get("status", {}).get("phase") in phases else None

    return deadlines.poll(deadline, probe, f"job {namespace}/{name} in phase {phases}")


def pods(kube: apiclient.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    items = kube.items(apiclient.resource_path("pods", namespace))
    return {p["metadata"]["name"]: p for p in items}


def wait_no_pods(kube: apiclient.ApiClient, namespace: str, what: str) -> None:
    deadlines.poll(PODS_GONE, lambda: True if not pods(kube, namespace) else None, what)


def events(kube: apiclient.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    items = kube.items(apiclient.resource_path("events", namespace))
    return [
        (str(e.get("reason")), str(e.get("message")))
        for e in items
        if e.get("involvedObject", {}).get("kind") == "MapReduceJob"
        and e.get("involvedObject", {}).get("name") == name
    ]


def posted(kube: apiclient.ApiClient, namespace: str, name: str, reason: str) -> list[str]:
    """The messages of the job's events of ``reason``, once there is at least one."""

    def messages() -> list[str] | None:
        found = [m for r, m in events(kube, namespace, name) if r == reason]
        return found or None

    return deadlines.poll(EVENT_POSTED, messages, f"a {reason} event of {namespace}/{name}")


def oracle(tmp_path: Path, doc: dict[str, Any], paths: list[str] | None = None) -> list[str]:
    """The same app over the same input, sequentially, in this process's view of files."""
    local = copy.deepcopy(doc)
    for key in ("volumes", "volumeMounts", "activeDeadlineSeconds", "suspend"):
        local["spec"].pop(key, None)
    if paths is not None:
        local["spec"]["input"]["paths"] = paths
    local["spec"]["output"] = {"path": str(tmp_path / "oracle"), "overwrite": True}
    result = run_cli("run", "--sequential", "--quiet", str(write_manifest(tmp_path, local)))
    assert result.returncode == 0, result.stderr
    return sorted_output(tmp_path / "oracle")


def reasons(kube: apiclient.ApiClient, namespace: str, name: str) -> list[str]:
    return [reason for reason, _ in events(kube, namespace, name)]


def test_the_wordcount_example_runs_to_completion_and_leaves_nothing_behind(
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
    operator: LocalOperator,
) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "wordcount-job.yaml").read_text())
    doc["spec"]["output"]["path"] = str(shared / "out")
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["reduces"] == "3/3"
    assert status["maps"] == f"{status['mapsTotal']}/{status['mapsTotal']}"
    assert status["output"]["files"] == 3
    assert status["observedGeneration"] == job["metadata"]["generation"]
    assert status["counters"], "the master's final counters reach the status"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Complete"] == "True"
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert (shared / "out" / "_SUCCESS").exists()
    assert {"Accepted", "Completed"} <= set(reasons(kube, job_namespace, name))
    assert status["statusPage"] == {
        "service": f"{name}-master",
        "port": 9090,
        "portForward": f"kubectl port-forward -n {job_namespace} svc/{name}-master 9090",
    }
    assert status["report"] == f"{shared / 'out'}/_summary.json"
    kept = statusui.load_kept(status["report"])  # what `kubemr ui` serves
    assert kept.phase == "Succeeded" and kept.maps.done == status["mapsTotal"]
    assert {t.worker for t in kept.tasks} <= {w.name for w in kept.workers}
    assert kept.workers and all(w.name.startswith(f"{name}-") for w in kept.workers)  # pods
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert f'kubemr_operator_jobs{{namespace="{job_namespace}",phase="Succeeded"}} 1.0' in metrics
    assert "kubemr_operator_reconcile_duration_seconds_count" in metrics

    def only_the_master_left() -> list[str] | None:
        names = sorted(pods(kube, job_namespace))
        return names if names == [f"{name}-master"] else None

    deadlines.poll(PODS_GONE, only_the_master_left, "worker pods deleted (DeleteWorkers)")
    kube.delete(jobs_path(job_namespace, name))

    def nothing_left() -> bool | None:
        paths = [
            apiclient.resource_path(kind, job_namespace)
            for kind in ("pods", "services", "secrets", "configmaps")
        ]
        paths.append(f"/apis/networking.k8s.io/v1/namespaces/{job_namespace}/networkpolicies")
        left = [
            f"{path.rsplit('/', 1)[-1]}/{item['metadata']['name']}"
            for path in paths
            for item in kube.items(path)
            if item["metadata"].get("labels", {}).get("kubemr.io/job") == name
        ]
        return True if not left else None

    deadlines.poll(PODS_GONE, nothing_left, "every object of the deleted job garbage-collected")


def test_a_user_app_reads_and_writes_through_spec_volumes(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    (shared / "in").mkdir()
    (shared / "results").mkdir()
    local_paths = word_input(shared / "in")
    doc = job_doc(
        "volumes",
        {"module": FAULTS_APP},
        ["/mnt/kubemr-test/in/*.txt"],
        "/mnt/kubemr-test/results/out",
        volumes=[
            {"name": "input", "hostPath": {"path": str(shared / "in")}},
            {"name": "results", "hostPath": {"path": str(shared / "results")}},
        ],
        volumeMounts=[
            {"name": "input", "mountPath": "/mnt/kubemr-test/in", "readOnly": True},
            {"name": "results", "mountPath": "/mnt/kubemr-test/results"},
        ],
    )
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["output"]["path"] == "/mnt/kubemr-test/results/out"
    assert sorted_output(shared / "results" / "out") == oracle(tmp_path, doc, local_paths)


def test_a_failed_worker_pod_is_replaced_and_the_job_still_succeeds(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    """mapper-0 loads the app (and crashes) only once it registered; on a loaded machine
    the other mappers could do every map before that and the job end without the fault.
    The reduce waits on a gate opened only once the crashed pod was replaced."""
    paths = word_input(shared)
    gate = shared / "go"
    app = {"module": FAULTS_APP, "args": {"crash_pods": "-mapper-0$", "hold": str(gate)}}
    doc = job_doc("replace", app, paths, str(shared / "out"))
    name = submit(kube, job_namespace, doc)
    posted(kube, job_namespace, name, "WorkerReplaced")
    gate.touch()
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["failedPods"] == 1
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    replaced = [m for r, m in events(kube, job_namespace, name) if r == "WorkerReplaced"]
    assert len(replaced) == 1 and f"pod {name}-mapper-0 failed (Error, exit code 3)" in replaced[0]
    failed = pods(kube, job_namespace)[f"{name}-mapper-0"]  # kept: its log explains
    assert failed["status"]["phase"] == "Failed"


def test_pods_failing_past_the_backoff_limit_fail_the_job(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    app = {"module": FAULTS_APP, "args": {"crash_pods": "-mapper-"}}
    doc = job_doc("backoff", app, word_input(shared), str(shared / "out"), backoffLimit=1)
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    status = job["status"]
    assert status["phase"] == "Failed" and status["reason"] == "BackoffLimitExceeded", status
    assert "more than spec.backoffLimit (1)" in status["message"]
    assert "crashes on purpose" in status["message"]  # the pod's last words

    def stopped() -> bool | None:
        running = [
            n
            for n, p in pods(kube, job_namespace).items()
            if p["status"].get("phase") in ("Pending", "Running")
        ]
        return True if not running else None

    deadlines.poll(PODS_GONE, stopped, "no pod of the failed job still running")
    assert not (shared / "out" / "_SUCCESS").exists()


def test_bad_input_fails_the_job_with_a_message_naming_it(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    missing = str(shared / "nowhere" / "*.txt")
    doc = job_doc("badinput", {"builtin": "wordcount"}, [missing], str(shared / "out"))
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    status = job["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidInput", status
    assert str(shared / "nowhere") in status["message"]
    assert not [n for n in pods(kube, job_namespace) if "-mapper-" in n or "-reducer-" in n]


def test_the_active_deadline_stops_a_job_that_runs_too_long(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    app = {"module": FAULTS_APP, "args": {"delay": "0.2"}}
    doc = job_doc("deadline", app, word_input(shared), str(shared / "out"), activeDeadlineSeconds=4)
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["reason"] == "DeadlineExceeded", job["status"]
    wait_no_pods(kube, job_namespace, "every pod of the job stopped")


def test_a_suspended_job_starts_nothing_until_resumed(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    doc = job_doc(
        "suspended",
        {"builtin": "wordcount"},
        word_input(shared),
        str(shared / "out"),
        suspend=True,
    )
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Suspended",), JOB_PHASE)
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]}["Suspended"] == "True"
    assert pods(kube, job_namespace) == {}
    kube.merge_patch(jobs_path(job_namespace, name), {"spec": {"suspend": False}})
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert {"Suspended", "Resumed", "Completed"} <= set(reasons(kube, job_namespace, name))


def test_an_unschedulable_job_says_why_and_times_out(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    doc = job_doc(
        "nowhere",
        {"builtin": "wordcount"},
        word_input(shared),
        str(shared / "out"),
        nodeSelector={"kubemr.io/no-such-node": "true"},
        pendingTimeout="10m",
    )
    name = submit(kube, job_namespace, doc)

    def pending_condition() -> dict[str, Any] | None:
        status = kube.get(jobs_path(job_namespace, name)).get("status", {})
        for condition in status.get("conditions", []):
            if condition["type"] == "PodsPending" and condition["status"] == "True":
                return dict(condition)
        return None

    condition = deadlines.poll(JOB_PHASE, pending_condition, "condition PodsPending=True")
    assert condition["reason"] == "Unschedulable", condition
    # Seen waiting: now the timeout may strike (a short one from the start could strike
    # before a loaded test process ever saw the condition).
    kube.merge_patch(jobs_path(job_namespace, name), {"spec": {"pendingTimeout": "1s"}})
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["reason"] == "PodPendingTimeout", job["status"]
    assert "Unschedulable" in job["status"]["message"]


def test_ttl_after_finished_deletes_the_job(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    doc = job_doc(
        "ttl",
        {"builtin": "wordcount"},
        word_input(shared),
        str(shared / "out"),
        ttlSecondsAfterFinished=0,
        cleanupPolicy="DeleteAll",
    )
    name = submit(kube, job_namespace, doc)

    def deleted() -> bool | None:
        try:
            kube.get(jobs_path(job_namespace, name))
        except apiclient.ApiError as error:
            return True if apiclient.is_not_found(error) else None
        return None

    deadlines.poll(JOB_FINISHED, deleted, f"job {name} deleted after it finished")
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)


def test_an_operator_killed_mid_job_carries_on_without_duplicates(
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
    operator: LocalOperator,
) -> None:
    """The reducers wait for a file the test creates only once the new operator runs:
    the job is certainly unfinished when the operator dies and when it comes back."""
    gate = shared / "go"
    app = {"module": FAULTS_APP, "args": {"delay": "0.004", "hold": str(gate)}}
    doc = job_doc("restart", app, word_input(shared), str(shared / "out"))
    name = submit(kube, job_namespace, doc)

    def workers_created() -> bool | None:
        return True if len(pods(kube, job_namespace)) >= 4 else None

    deadlines.poll(JOB_PHASE, workers_created, "master and worker pods created")
    operator.kill()
    status = kube.get(jobs_path(job_namespace, name)).get("status", {})
    assert status.get("phase") in ("Pending", "Running"), status
    assert not status.get("reducesDone"), status
    operator.start()
    gate.touch()  # only now can the job finish, and only an operator can say it did
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert sorted(pods(kube, job_namespace)) == [f"{name}-master"]
    created = [m for r, m in events(kube, job_namespace, name) if r.endswith("Replaced")]
    assert created == [], "no pod was replaced or duplicated"
    attempts = {
        p["metadata"]["labels"]["kubemr.io/attempt"]
        for p in kube.items(apiclient.resource_path("pods", job_namespace))
    }
    assert attempts == {"0"}


def wait_progress(kube: apiclient.ApiClient, namespace: str, name: str, maps: int) -> None:
    def probe() -> bool | None:
        status = kube.get(jobs_path(namespace, name)).get("status", {})
        return True if status.get("mapsDone", 0) >= maps else None

    deadlines.poll(JOB_PHASE, probe, f"job {name} with at least {maps} map tasks done")


def summary(output: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((output / "_summary.json").read_text()))


def test_a_deleted_master_pod_is_replaced_and_resumes_the_job(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    app = {"module": FAULTS_APP, "args": {"delay": "0.01"}}
    doc = job_doc("resume", app, word_input(shared), str(shared / "out"))
    name = submit(kube, job_namespace, doc)
    wait_progress(kube, job_namespace, name, 2)
    kube.delete(apiclient.resource_path("pods", job_namespace, f"{name}-master"))
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    replaced = [m for r, m in events(kube, job_namespace, name) if r == "MasterReplaced"]
    assert replaced, "a MasterReplaced event"
    facts = summary(shared / "out")
    assert facts["masterRestarts"] >= 1
    assert facts["recovered"]["maps"] >= 1, facts["recovered"]


def test_suspend_mid_job_keeps_committed_work(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    """Once a reduce task is committed, the reducer waits for a file the test creates
    only before resuming: the job is certainly unfinished when it is suspended."""
    gate = shared / "go"
    args = {"hold": str(gate), "hold_when": str(shared / "out" / "part-*")}
    app = {"module": FAULTS_APP, "args": args}
    doc = job_doc("pause", app, word_input(shared), str(shared / "out"))
    name = submit(kube, job_namespace, doc)

    def one_reduce_committed() -> bool | None:
        status = kube.get(jobs_path(job_namespace, name)).get("status", {})
        return True if status.get("reducesDone", 0) >= 1 else None

    deadlines.poll(JOB_FINISHED, one_reduce_committed, "one reduce task committed")
    kube.merge_patch(jobs_path(job_namespace, name), {"spec": {"suspend": True}})
    wait_for(kube, job_namespace, name, ("Suspended",), JOB_PHASE)
    committed = {p.name: p.stat().st_ino for p in (shared / "out").glob("part-*")}
    assert committed, "a part file committed before the suspension"
    wait_no_pods(kube, job_namespace, "every pod of the suspended job stopped")
    gate.touch()
    kube.merge_patch(jobs_path(job_namespace, name), {"spec": {"suspend": False}})
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)
    assert summary(shared / "out")["recovered"]["reduces"] >= 1
    for part, inode in committed.items():  # kept, not rewritten
        assert (shared / "out" / part).stat().st_ino == inode


def test_a_job_runs_in_a_namespace_enforcing_the_restricted_pod_security_standard(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    kube.merge_patch(f"/api/v1/namespaces/{job_namespace}", {"metadata": {"labels": labels}})
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "not-restricted"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]},
    }
    with pytest.raises(apiclient.ApiError) as refused:  # admission really enforces it
        kube.create(apiclient.resource_path("pods", job_namespace), probe)
    assert refused.value.status == 403
    doc = job_doc("restricted", {"builtin": "wordcount"}, word_input(shared), str(shared / "out"))
    name = submit(kube, job_namespace, doc)

    def status_page() -> dict[str, str] | None:
        """The master pod's status page and stylesheet, once it serves them."""
        master = pods(kube, job_namespace).get(f"{name}-master", {})
        ip = master.get("status", {}).get("podIP")
        if not ip:
            return None
        try:
            return {
                path: urllib.request.urlopen(f"http://{ip}:9090/{path}", timeout=5).read().decode()
                for path in ("", "static/statuspage.css")
            }
        except OSError:
            return None

    # The page is served from the package inside the restricted pod (read-only root).
    served = deadlines.poll(JOB_PHASE, status_page, "the master pod serves its status page")
    assert f"<title>{name} \u00b7 " in served[""] and 'id="maps-total"' in served[""]
    assert ".phase-failed" in served["static/statuspage.css"]
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "out") == oracle(tmp_path, doc)


def kubectl_get_jobs(cluster: clusters.Cluster, namespace: str) -> str:
    """``kubectl get mrj`` as a user types it (the CRD's printer columns)."""
    paths = cluster.paths
    command = [str(paths.kubectl), "--kubeconfig", str(paths.kubeconfig)]
    listing = subprocess.run(
        [*command, "get", "mrj", "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listing.stdout


def new_log(operator: LocalOperator, offset: int) -> str:
    """What the operator logged since ``offset`` (a size of its log)."""
    with operator.log.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_a_pod_security_refusal_fails_the_job_at_once_and_says_why(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    operator: LocalOperator,
) -> None:
    """The restricted standard refuses hostPath volumes at admission: no pod can ever
    start, so the job fails at once with the API server's words, as a condition, an
    event, a column of ``kubectl get mrj``, and one warning in the operator's log."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    kube.merge_patch(f"/api/v1/namespaces/{job_namespace}", {"metadata": {"labels": labels}})
    logged = operator.log.stat().st_size
    doc = job_doc(
        "hostpath",
        {"builtin": "wordcount"},
        ["/mnt/in/*.txt"],
        "/mnt/in/out",
        volumes=[{"name": "input", "hostPath": {"path": str(shared)}}],
        volumeMounts=[{"name": "input", "mountPath": "/mnt/in"}],
    )
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"), JOB_PHASE)
    status = job["status"]
    assert status["phase"] == "Failed" and status["reason"] == "FailedCreate", status
    assert "violates PodSecurity" in status["message"] and "hostPath" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["CreateRefused"]["status"] == "True", conditions
    assert conditions["CreateRefused"]["message"] == status["message"]
    assert conditions["Failed"]["reason"] == "FailedCreate"
    refused = posted(kube, job_namespace, name, "FailedCreate")
    assert len(refused) == 1 and "violates PodSecurity" in refused[0], refused
    assert "FailedCreate" in kubectl_get_jobs(cluster, job_namespace)
    assert pods(kube, job_namespace) == {}
    log = new_log(operator, logged)
    assert "Traceback" not in log, log
    assert log.count("the API server refused to create") == 1, log


def test_a_full_resource_quota_is_waited_for_then_fails_the_job_after_the_pending_timeout(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    operator: LocalOperator,
) -> None:
    """A quota of one pod admits the master and refuses the mappers: the job says so
    (condition, event, ``kubectl get mrj``) while it waits for room, and fails after
    spec.pendingTimeout (shortened once the waiting was seen); every pod is stopped,
    and the log has no traceback."""
    quota = {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}}
    kube.create(apiclient.resource_path("resourcequotas", job_namespace), quota)

    def quota_computed() -> bool | None:
        path = apiclient.resource_path("resourcequotas", job_namespace, "one-pod")
        return True if kube.get(path).get("status", {}).get("hard") else None

    deadlines.poll(JOB_PHASE, quota_computed, "the quota's status computed")
    logged = operator.log.stat().st_size
    doc = job_doc(
        "quota",
        {"builtin": "wordcount"},
        word_input(shared),
        str(shared / "out"),
        pendingTimeout="10m",
    )
    name = submit(kube, job_namespace, doc)

    def refused() -> dict[str, Any] | None:
        job = kube.get(jobs_path(job_namespace, name))
        status = job.get("status", {})
        return job if status.get("reason") == "FailedCreate" else None

    waiting = deadlines.poll(JOB_PHASE, refused, "the job saying its pods are refused")
    assert waiting["status"]["phase"] in ("Pending", "Running"), waiting["status"]
    assert "exceeded quota" in waiting["status"]["message"], waiting["status"]
    columns = kubectl_get_jobs(cluster, job_namespace)
    assert "FailedCreate" in columns, columns
    kube.merge_patch(jobs_path(job_namespace, name), {"spec": {"pendingTimeout": "1s"}})
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    status = job["status"]
    assert status["phase"] == "Failed" and status["reason"] == "FailedCreate", status
    assert "spec.pendingTimeout (1s)" in status["message"], status
    assert "exceeded quota" in status["message"], status
    refusals = posted(kube, job_namespace, name, "FailedCreate")
    assert refusals and all("exceeded quota" in m for m in refusals), refusals
    wait_no_pods(kube, job_namespace, "every pod of the failed job stopped")
    assert "Traceback" not in new_log(operator, logged)


def test_a_job_deleted_and_created_again_at_once_runs_anew_and_adopts_nothing(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    """The first job holds its reducers (it can never finish); it is deleted while its
    pods run and a job of the same name is created as soon as the API server takes it.
    Pods, Service, Secret, ConfigMap and NetworkPolicy have the same names for both: the
    new job waits until the old ones are garbage-collected, adopts none of them, and
    succeeds with the oracle's output."""
    gate = shared / "never"
    held = {"module": FAULTS_APP, "args": {"hold": str(gate)}}
    first = job_doc("again", held, word_input(shared), str(shared / "a"))
    name = submit(kube, job_namespace, first)

    def workers_created() -> bool | None:
        return True if len(pods(kube, job_namespace)) >= 4 else None

    deadlines.poll(JOB_PHASE, workers_created, "the first job's pods created")
    old_uid = kube.get(jobs_path(job_namespace, name))["metadata"]["uid"]
    kube.delete(jobs_path(job_namespace, name))
    doc = job_doc("again", {"builtin": "wordcount"}, word_input(shared), str(shared / "b"))

    def created_again() -> str | None:
        try:
            return submit(kube, job_namespace, doc)
        except apiclient.ApiError as error:  # the old one still finalizing
            if apiclient.is_conflict(error):
                return None
            raise

    deadlines.poll(JOB_PHASE, created_again, f"job {name} created again")
    new_uid = kube.get(jobs_path(job_namespace, name))["metadata"]["uid"]
    assert new_uid != old_uid
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert sorted_output(shared / "b") == oracle(tmp_path, doc)
    assert not gate.exists()
    owners: dict[str, set[str]] = {}
    for kind in ("pods", "services", "secrets", "configmaps"):
        for item in kube.items(apiclient.resource_path(kind, job_namespace)):
            if item["metadata"].get("labels", {}).get("kubemr.io/job") == name:
                refs = item["metadata"].get("ownerReferences", [])
                owners[f"{kind}/{item['metadata']['name']}"] = {r["uid"] for r in refs}
    assert owners and all(uids == {new_uid} for uids in owners.values()), owners


def test_the_gzip_and_map_only_examples_run_and_counters_reach_the_status(
    kube: apiclient.ApiClient, job_namespace: str, shared: Path, tmp_path: Path
) -> None:
    books = shared / "books-gz"
    for directory in (books, tmp_path / "gz", tmp_path / "maponly"):
        directory.mkdir()
    for book in sorted(BOOKS.glob("*.txt"))[:4]:
        (books / f"{book.name}.gz").write_bytes(gzip.compress(book.read_bytes()))
    gz = yaml.safe_load((ROOT / "examples" / "wordcount-gzip-job.yaml").read_text())
    gz["spec"]["input"]["paths"] = [str(books / "*.gz")]
    gz["spec"]["output"]["path"] = str(shared / "gz-out")
    maponly = yaml.safe_load((ROOT / "examples" / "grep-maponly-job.yaml").read_text())
    # The map-only example with a counting app, compressed input, and skipping allowed.
    maponly["spec"]["app"] = {"module": "tests/runtime/apps/contract.py:CountedWords"}
    maponly["spec"]["input"]["paths"] = [str(books / "*.gz")]
    maponly["spec"]["output"]["path"] = str(shared / "maponly-out")
    maponly["spec"]["faultTolerance"] = {"maxSkippedRecords": 3}
    names = [submit(kube, job_namespace, doc) for doc in (gz, maponly)]
    statuses = [wait_for(kube, job_namespace, n, ("Succeeded", "Failed"))["status"] for n in names]
    assert [s["phase"] for s in statuses] == ["Succeeded", "Succeeded"], statuses
    gz_status, maponly_status = statuses
    assert gz_status["maps"] == "4/4"  # one map task per compressed file
    assert sorted(p.name for p in (shared / "gz-out").glob("part-*")) == [
        "part-00000.zst",
        "part-00001.zst",
    ]
    assert sorted_output(shared / "gz-out") == oracle(tmp_path / "gz", gz)
    assert maponly_status["maps"] == "4/4" and maponly_status["reducesTotal"] == 0
    parts = sorted((shared / "maponly-out").glob("part-*"))
    assert [p.name for p in parts] == [f"part-{i:05d}" for i in range(4)]
    assert sorted_output(shared / "maponly-out") == oracle(tmp_path / "maponly", maponly)
    counters = maponly_status["appCounters"]
    lines = sum(len(b.read_text().splitlines()) for b in sorted(BOOKS.glob("*.txt"))[:4])
    assert counters["lines"] == lines == maponly_status["counters"]["map_input_records"]
    assert counters["words"] == maponly_status["counters"]["map_output_records"]
    assert maponly_status["skippedRecords"] == 0
