"""The operator's job scenarios on real kubelets, and the faults only a real kubelet makes.

Each test owns a namespace on the kind cluster (dumped when it fails) and a folder under
``.kind/data`` that every node mounts; jobs run the kubemr image as UID 65532 on a
read-only root, and every successful output is compared with a sequential run of the same
app. Faults come from the purpose-built app of the operator tests
(tests/operator/apps/podfaults.py): a worker that crashes, takes more memory than its
limit (the kernel's OOM killer), or writes more than its ephemeral-storage limit (the
kubelet's eviction).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kindcluster import cluster
from kindjobs import (
    JobFolder,
    apply,
    events,
    faults_app,
    get_json,
    job,
    job_doc,
    kubectl,
    oracle,
    wait_maps,
    wait_phase,
)
from localkube import deadlines

from testjobs import sorted_output

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

MISSING_IMAGE = "127.0.0.1:9/kubemr/missing:0"
"""An image no node can pull, and fails to at once (nothing listens on port 9); a name
under an unknown domain takes about 50 s to fail on these nodes (no upstream DNS)."""
POD_POLL = 0.1
"""Seconds between two looks at the pods while a test counts masters or duplicates."""
PENDING = deadlines.Deadline("kind_pending_reason", 180.0)
REPLACED = deadlines.Deadline("kind_worker_replaced", 300.0)
"""Seconds for a worker's fault to be seen and its pod replaced (an eviction waits for
the kubelet's next look at the pod's disk use)."""


def replaced(tools: cluster.Tools, namespace: str, name: str) -> list[str]:
    return [m for r, m in events(tools, namespace, name) if r == "WorkerReplaced"]


def wait_replaced(tools: cluster.Tools, namespace: str, name: str, why: str) -> str:
    """The first WorkerReplaced event whose message says ``why``."""

    def probe() -> str | None:
        return next((m for m in replaced(tools, namespace, name) if why in m), None)

    return deadlines.poll(
        REPLACED,
        probe,
        f"a WorkerReplaced event of job {name} saying {why!r}",
        interval=1.0,
        describe=lambda: str(events(tools, namespace, name)),
    )


def held_app(folder: JobFolder, **args: str) -> dict[str, Any]:
    """The fault app with every reduce held until the test creates ``release``: the job
    cannot end before the fault was seen."""
    return faults_app(hold=f"{folder.node}/release", **args)


def release(folder: JobFolder) -> None:
    (folder.host / "release").write_text("go\n")


def succeeded_like_oracle(
    tools: cluster.Tools,
    namespace: str,
    name: str,
    doc: dict[str, Any],
    folder: JobFolder,
    tmp_path: Path,
) -> dict[str, Any]:
    done = wait_phase(tools, namespace, name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert sorted_output(folder.host / "out") == oracle(tmp_path, doc, folder)
    return done


def test_a_crashed_worker_is_replaced_and_the_job_succeeds(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    doc = job_doc("crash", folder, held_app(folder, crash_pods="-mapper-0$"))
    name = apply(kind, namespace, doc)
    wait_replaced(kind, namespace, name, f"pod {name}-mapper-0 failed (Error, exit code 3)")
    release(folder)
    done = succeeded_like_oracle(kind, namespace, name, doc, folder, tmp_path)
    assert done["status"]["failedPods"] >= 1  # a replacement may fail too (StartError)


def test_an_oom_killed_worker_is_replaced_and_the_reason_says_oomkilled(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    limits = {"resources": {"limits": {"memory": "192Mi"}}}
    app = held_app(folder, hog_pods="-mapper-0$", hog_mib="512")
    doc = job_doc("oom", folder, app, mapper={"replicas": 2, **limits})
    name = apply(kind, namespace, doc)
    wait_replaced(kind, namespace, name, f"pod {name}-mapper-0 failed (OOMKilled")
    release(folder)
    done = succeeded_like_oracle(kind, namespace, name, doc, folder, tmp_path)
    assert done["status"]["failedPods"] >= 1  # a replacement may fail too (StartError)


def test_workers_oom_killed_past_the_backoff_limit_fail_the_job_saying_what_to_raise(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    limits = {"resources": {"limits": {"memory": "192Mi"}}}
    app = faults_app(hog_pods="-mapper-", hog_mib="512")
    doc = job_doc("ooms", folder, app, mapper={"replicas": 2, **limits}, backoffLimit=1)
    name = apply(kind, namespace, doc)
    status = wait_phase(kind, namespace, name)["status"]
    assert status["phase"] == "Failed" and status["reason"] == "BackoffLimitExceeded", status
    assert "OOMKilled" in status["message"], status
    assert "raise spec.mapper.resources.limits.memory" in status["message"], status


def test_a_worker_past_its_ephemeral_storage_limit_is_evicted_and_replaced(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    limits = {"resources": {"limits": {"ephemeral-storage": "16Mi"}}}
    app = held_app(folder, fill_pods="-mapper-0$", fill_mib="48")
    doc = job_doc("evict", folder, app, mapper={"replicas": 2, **limits})
    name = apply(kind, namespace, doc)
    wait_replaced(kind, namespace, name, "Evicted")
    release(folder)
    succeeded_like_oracle(kind, namespace, name, doc, folder, tmp_path)


def test_an_image_that_cannot_be_pulled_says_so_and_fails_after_the_pending_timeout(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    doc = job_doc(
        "pull",
        folder,
        {"builtin": "wordcount"},
        image=MISSING_IMAGE,
        pendingTimeout=60,
    )
    name = apply(kind, namespace, doc)

    def pending_reason() -> str | None:
        conditions = job(kind, namespace, name).get("status", {}).get("conditions", [])
        for condition in conditions:
            if condition["type"] == "PodsPending" and condition["status"] == "True":
                return str(condition["reason"])
        return None

    reason = deadlines.poll(PENDING, pending_reason, "a PodsPending condition", interval=0.5)
    assert reason in ("ErrImagePull", "ImagePullBackOff"), reason
    done = wait_phase(kind, namespace, name)
    status = done["status"]
    assert status["phase"] == "Failed" and status["reason"] == "PodPendingTimeout", status
    assert "ErrImagePull" in status["message"] or "ImagePullBackOff" in status["message"], status


def test_a_missing_credentials_secret_says_createcontainerconfigerror(
    kind: cluster.Tools, namespace: str, folder: JobFolder
) -> None:
    doc = job_doc(
        "secret",
        folder,
        {"builtin": "wordcount"},
        storage={"credentialsSecret": "no-such-secret"},
        pendingTimeout=45,
    )
    name = apply(kind, namespace, doc)
    done = wait_phase(kind, namespace, name)
    status = done["status"]
    assert status["phase"] == "Failed" and status["reason"] == "PodPendingTimeout", status
    assert "CreateContainerConfigError" in status["message"], status
    assert "no-such-secret" in status["message"], status


class PodWatch:
    """Look at a namespace's pods every :data:`POD_POLL` seconds, in a thread, and keep
    the worst moment: the most master pods at once, and any role/index held twice."""

    def __init__(self, tools: cluster.Tools, namespace: str) -> None:
        self.tools, self.namespace = tools, namespace
        self.most_masters: list[str] = []
        self.duplicates: list[str] = []
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pods = get_json(self.tools, "-n", self.namespace, "get", "pods")["items"]
            self.looks += 1
            alive = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
            masters = [
                p["metadata"]["name"]
                for p in alive
                if p["metadata"]["labels"].get("kubemr.io/role") == "master"
            ]
            if len(masters) > len(self.most_masters):
                self.most_masters = masters
            slots = Counter(
                (
                    p["metadata"]["labels"].get("kubemr.io/role"),
                    p["metadata"]["labels"].get("kubemr.io/index"),
                )
                for p in alive
                if not p["metadata"].get("deletionTimestamp")
            )
            self.duplicates += [f"{r}-{i}" for (r, i), n in slots.items() if n > 1]
            time.sleep(POD_POLL)


def test_a_deleted_master_is_never_beside_its_replacement_and_the_job_resumes(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    doc = job_doc("master", folder, faults_app(delay="0.02"))
    name = apply(kind, namespace, doc)
    with PodWatch(kind, namespace) as watch:
        wait_maps(kind, namespace, name, 2)
        started = time.monotonic()
        kubectl(kind, "-n", namespace, "delete", "pod", f"{name}-master", "--wait=true")
        deleted_in = time.monotonic() - started
        succeeded_like_oracle(kind, namespace, name, doc, folder, tmp_path)
    print(f"master pod deleted in {deleted_in:.1f} s; {watch.looks} looks at the pods")
    assert len(watch.most_masters) == 1, watch.most_masters
    assert not watch.duplicates, watch.duplicates
    assert [r for r, _ in events(kind, namespace, name) if r == "MasterReplaced"]


def test_the_operator_pod_killed_mid_job_leaves_no_duplicate_pod(
    kind: cluster.Tools, namespace: str, folder: JobFolder, tmp_path: Path
) -> None:
    doc = job_doc("operator", folder, faults_app(delay="0.02"))
    name = apply(kind, namespace, doc)
    with PodWatch(kind, namespace) as watch:
        wait_maps(kind, namespace, name, 2)
        kubectl(
            kind,
            "-n",
            cluster.NAMESPACE,
            "delete",
            "pod",
            "-l",
            "app.kubernetes.io/name=kubemr",
            "--grace-period=0",
            "--force",
        )
        succeeded_like_oracle(kind, namespace, name, doc, folder, tmp_path)
    assert not watch.duplicates, watch.duplicates
    assert len(watch.most_masters) == 1, watch.most_masters
