"""Soak: 20 jobs back to back, then 5 at once, on the local control plane.

All must succeed with the oracle's output, and nothing may leak once the jobs are
deleted: no pod, no pod process (a process of the node agent carrying a pod's uid), no
pod network (netns, veth), no pod volume on the node (emptyDirs: spills, map outputs;
the per-pod directory itself stays, with the container logs, as a kubelet's logs do).
The operator's memory at the start and the end is printed and kept in the test's
report, not asserted: 25 jobs are too few to tell a leak from allocator noise.
Slow tier: `make test-slow` or `pytest -m slow tests/operator/test_soak.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from localkube import apiclient, deadlines, network
from localkube import cluster as clusters
from test_jobs import job_doc, jobs_path, oracle, pods, submit, wait_for

from localoperator import LocalOperator
from testjobs import sorted_output, word_input

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LEAKS_GONE = deadlines.Deadline("leaks_gone", 90.0)


def rss_mib(operator: LocalOperator) -> float:
    assert operator.process is not None
    return psutil.Process(operator.process.pid).memory_info().rss / 2**20


def pod_networks() -> set[str]:
    links = {n for n in network.list_links() if n.startswith(network.VETH_PREFIX)}
    return links | {n for n in network.list_netns() if n.startswith(network.NETNS_PREFIX)}


def pod_processes() -> set[str]:
    """Processes the node agent runs for pods (they carry their pod's uid)."""
    found = set()
    for process in psutil.process_iter():
        try:
            uid = process.environ().get("LOCALKUBE_POD_UID")
            if uid and process.status() != psutil.STATUS_ZOMBIE:
                found.add(f"{process.pid} {uid} {' '.join(process.cmdline())[:80]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def pod_volumes(cluster: clusters.Cluster, namespace: str) -> list[str]:
    """Volume directories still on the node for pods of ``namespace``."""
    return sorted(str(p) for p in cluster.paths.pods.glob(f"{namespace}_*/volumes"))


def run_job(kube: apiclient.ApiClient, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    name = submit(kube, namespace, doc)
    job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
    kube.delete(jobs_path(namespace, name))
    return job


def test_soak_twenty_in_a_row_then_five_at_once(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
    operator: LocalOperator,
    record_property: Any,
) -> None:
    paths = word_input(shared, files=2, lines=300)
    template = job_doc("soak", {"builtin": "wordcount"}, paths, str(shared / "out"))
    expected = oracle(tmp_path, template)
    networks_before = pod_networks()
    processes_before = pod_processes()
    memory_start = rss_mib(operator)

    for i in range(20):
        doc = job_doc(f"soak-{i}", {"builtin": "wordcount"}, paths, str(shared / f"out-{i}"))
        job = run_job(kube, job_namespace, doc)
        assert job["status"]["phase"] == "Succeeded", (i, job["status"])
        assert sorted_output(shared / f"out-{i}") == expected, i

    docs = [
        job_doc(f"burst-{i}", {"builtin": "wordcount"}, paths, str(shared / f"burst-{i}"))
        for i in range(5)
    ]
    names = [submit(kube, job_namespace, doc) for doc in docs]  # all five run at once
    jobs = [wait_for(kube, job_namespace, name, ("Succeeded", "Failed")) for name in names]
    for name in names:
        kube.delete(jobs_path(job_namespace, name))
    for i, job in enumerate(jobs):
        assert job["status"]["phase"] == "Succeeded", (i, job["status"])
        assert sorted_output(shared / f"burst-{i}") == expected, i

    def nothing_leaked() -> bool | None:
        left = {
            "pods": sorted(pods(kube, job_namespace)),
            "pod processes": sorted(pod_processes() - processes_before),
            "networks": sorted(pod_networks() - networks_before),
            "volumes": pod_volumes(cluster, job_namespace),
        }
        return True if not any(left.values()) else None

    deadlines.poll(
        LEAKS_GONE, nothing_leaked, "no pod, pod process, pod network or volume after 25 jobs"
    )
    assert list(cluster.paths.pods.glob(f"{job_namespace}_*")), "no pod dir: a vacuous check"
    memory_end = rss_mib(operator)
    record_property("operator_rss_mib", f"{memory_start:.1f} -> {memory_end:.1f}")
    print(f"operator RSS: {memory_start:.1f} MiB at the start, {memory_end:.1f} MiB at the end")
