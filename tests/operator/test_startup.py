"""A job applied in the same instant the operator starts is reconciled.

Ten rounds, each with a fresh namespace no other operator watches (``test-own-*``) and a
fresh operator process that watches it through a glob pattern (as the shared test
operator and a cluster-wide install do: namespace discovery, the resource scan and the
watch start all race the job). The job is created right after the operator process is
spawned, before it has even imported kopf. The namespace is created, by turns, before the
spawn, right after it, or at the moment kopf logs the start of its namespace watch-stream:
between kopf's first namespace listing and its watch-stream's own listing, the window that
kubemr_operator.discovery closes (without it, 4 of 10 such rounds were never reconciled).
Every job must succeed with the oracle's output.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from localkube import apiclient, deadlines
from localkube import cluster as clusters
from localkube.fixtures import dump
from test_jobs import job_doc, oracle, submit, wait_for

from localoperator import OPERATOR_READY, OWN_NAMESPACES, LocalOperator
from testjobs import sorted_output, word_input

ROUNDS = 10
NAMESPACE_MOMENTS = ("before the spawn", "after the spawn", "as kopf starts watching namespaces")
NAMESPACE_WATCH_LINE = "Starting the watch-stream for namespaces"
"""What kopf logs (DEBUG, kept by kubemr_operator.__main__) just before its second listing."""

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(ROUNDS * 90)]  # rounds of a job each


def create_namespace(kube: apiclient.ApiClient, name: str) -> None:
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadlines.poll(
        deadlines.NAMESPACE_READY,
        lambda: kube.get(apiclient.resource_path("serviceaccounts", name, "default")),
        f"the default service account of namespace {name}",
    )


def test_a_job_applied_as_the_operator_starts_is_reconciled_every_time(
    cluster: clusters.Cluster,
    kube: apiclient.ApiClient,
    crd: str,
    shared: Path,
    tmp_path: Path,
) -> None:
    del crd
    run = uuid.uuid4().hex[:5]
    paths = word_input(shared, files=1, lines=300)
    template = job_doc("startup", {"builtin": "wordcount"}, paths, str(shared / "out"))
    template["spec"].update(reduceTasks=1, mapper={"replicas": 1})
    expected = oracle(tmp_path, template)
    for round_ in range(ROUNDS):
        namespace = f"{OWN_NAMESPACES}{run}-{round_}"
        doc = job_doc("startup", {"builtin": "wordcount"}, paths, str(shared / f"out-{round_}"))
        doc["spec"].update(reduceTasks=1, mapper={"replicas": 1})
        log = cluster.paths.logs / f"operator-startup-{run}-{round_}.log"
        operator = LocalOperator(cluster.paths, f"{OWN_NAMESPACES}{run}-*", log)
        moment = NAMESPACE_MOMENTS[round_ % len(NAMESPACE_MOMENTS)]
        if moment == "before the spawn":
            create_namespace(kube, namespace)
        operator.spawn()
        try:
            if moment == "as kopf starts watching namespaces":
                deadlines.poll(
                    OPERATOR_READY,
                    lambda process=operator: NAMESPACE_WATCH_LINE in process.log_tail(400) or None,
                    "the operator's namespace watch-stream to start",
                    interval=0.005,
                )
            if moment != "before the spawn":
                create_namespace(kube, namespace)
            name = submit(kube, namespace, doc)
            job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
            assert job["status"]["phase"] == "Succeeded", (round_, moment, job["status"])
            assert sorted_output(shared / f"out-{round_}") == expected, round_
        except BaseException:
            print(f"==== round {round_}: operator log\n{operator.log_tail(200)}")
            print(dump(kube, cluster.paths, namespace))
            raise
        finally:
            operator.stop()
            kube.delete(f"/api/v1/namespaces/{namespace}")
