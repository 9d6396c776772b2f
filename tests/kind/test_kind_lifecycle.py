"""A MapReduceJob's lifecycle on real kubelets: the backoff limit, bad input, the active
deadline, suspend and resume mid-job, and TTL with the cluster's garbage collector.

Stopping is where a real kubelet differs most from local processes: a pod's container
gets SIGTERM, its grace period, then SIGKILL, and an owner's deletion is carried out by
the controller-manager's garbage collector. Each test waits until every pod it expects
gone is gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kindcluster import cluster
from kindjobs import (
    JobFolder,
    apply,
    events,
    faults_app,
    get_json,
    job_doc,
    kubectl,
    oracle,
    wait_phase,
)
from localkube import deadlines

from testjobs import sorted_output

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

PODS_GONE = deadlines.Deadline("kind_pods_gone", 120.0)
"""Seconds for a stopped job's pods to be gone (SIGTERM, then the kubelet's cleanup)."""
COMMITTED = deadlines.Deadline("kind_reduce_committed", 300.0)


def live_pods(tools: cluster.Tools, namespace: str) -> list[str]:
    items = get_json(tools, "-n", namespace, "get", "pods")["items"]
    return [
        p["metadata"]["name"] for p in items if p["status"].get("phase") in ("Pending", "Running")
    ]


def all_pods(tools: cluster.Tools, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in get_json(tools, "-n", namespace, "get", "pods")["items"]]


def wait_gone(
    tools: cluster.Tools,
    namespace: str,
    listing: Callable[[cluster.Tools, str], list[str]],
    what: str,
) -> None:
    deadlines.poll(
        PODS_GONE,
        lambda: True if not listing(tools, namespace) else None,
        what,
        interval=0.5,
        describe=lambda: str(listing(tools, namespace)),
    )


def patch(tools: cluster.Tools, namespace: str, name: str, spec: dict[str, object]) -> None:
    kubectl(
        tools,
        "-n",
        namespace,
        "patch",
        "mrj",
        name,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": spec}),
    )


def test_pods_failing_past_the_backoff_limit_fail_the_job(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    doc = job_doc("backoff", folder, faults_app(crash_pods="-mapper-"), backoffLimit=1)
    name = apply(kind, namespace, doc)
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Failed" and status["reason"] == "BackoffLimitExceeded", status
    assert "crashes on purpose" in status["message"]  # the pod's last words
    wait_gone(kind, namespace, live_pods, "no pod of the failed job still running")
    assert not (folder.host / "out" / "_SUCCESS").exists()


def test_bad_input_fails_the_job_with_a_message_naming_it(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    doc = job_doc("badinput", folder, {"builtin": "wordcount"})
    doc["spec"]["input"]["paths"] = [f"{folder.node}/nowhere/*.txt"]
    name = apply(kind, namespace, doc)
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidInput", status
    assert f"{folder.node}/nowhere" in status["message"]
    assert not [n for n in all_pods(kind, namespace) if "-mapper-" in n or "-reducer-" in n]


def test_the_active_deadline_stops_a_job_that_runs_too_long(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    doc = job_doc("deadline", folder, faults_app(delay="0.2"), activeDeadlineSeconds=30)
    name = apply(kind, namespace, doc)
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Failed" and status["reason"] == "DeadlineExceeded", status
    wait_gone(kind, namespace, live_pods, "every pod of the job stopped")
    assert not (folder.host / "out" / "_SUCCESS").exists()


def test_suspend_mid_job_keeps_committed_work_and_resumes(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    """Once a reduce task is committed, the reducers wait for a file the test creates only
    before resuming: the job is certainly unfinished when it is suspended."""
    app = faults_app(hold=f"{folder.node}/go", hold_when=f"{folder.node}/out/part-*")
    doc = job_doc("pause", folder, app)
    name = apply(kind, namespace, doc)
    deadlines.poll(
        COMMITTED,
        lambda: True if list((folder.host / "out").glob("part-*")) else None,
        "one reduce task committed",
        interval=0.5,
    )
    patch(kind, namespace, name, {"suspend": True})
    wait_phase(kind, namespace, name, ("Suspended",))
    committed = {p.name: p.stat().st_ino for p in (folder.host / "out").glob("part-*")}
    wait_gone(kind, namespace, live_pods, "every pod of the suspended job stopped")
    (folder.host / "go").write_text("go\n")
    patch(kind, namespace, name, {"suspend": False})
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Succeeded", status
    assert sorted_output(folder.host / "out") == oracle(tmp_path, doc, folder)
    for part, inode in committed.items():  # kept, not rewritten
        assert (folder.host / "out" / part).stat().st_ino == inode
    reasons = {r for r, _ in events(kind, namespace, name)}
    assert {"Suspended", "Resumed", "Completed"} <= reasons, reasons


def test_ttl_deletes_the_job_and_the_garbage_collector_its_pods(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    """The job finishes with an hour to live, so its kept pods can be seen however slow
    the machine; then its TTL is cut to 1 s: the operator deletes it, the cluster's
    garbage collector its pods."""
    doc = job_doc(
        "ttl",
        folder,
        {"builtin": "wordcount"},
        ttlSecondsAfterFinished=3600,
        cleanupPolicy="KeepAll",
    )
    name = apply(kind, namespace, doc)
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Succeeded", status
    assert all_pods(kind, namespace), "KeepAll keeps the finished job's pods until it goes"
    patch(kind, namespace, name, {"ttlSecondsAfterFinished": 1})

    def deleted() -> bool | None:
        names = get_json(kind, "-n", namespace, "get", "mrj")["items"]
        return True if not names else None

    deadlines.poll(PODS_GONE, deleted, f"job {name} deleted by its TTL", interval=0.5)
    wait_gone(kind, namespace, all_pods, "the deleted job's pods collected by the cluster's GC")
    assert sorted_output(folder.host / "out") == oracle(tmp_path, doc, folder)
