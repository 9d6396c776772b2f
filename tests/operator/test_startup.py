"""A job applied in the same instant the operator starts is reconciled.

Ten rounds, each with a fresh namespace no other operator watches (``test-own-*``) and a
fresh operator process that watches it through a glob pattern (as the shared test
operator and a cluster-wide install do: namespace discovery, the resource scan and the
watch start all race the job). The job is created right after the operator process is
spawned, before it has even imported kopf; in odd rounds the namespace itself is created
only after the spawn too. Every job must succeed with the oracle's output.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from localkube import apiclient, deadlines
from localkube import cluster as clusters
from localkube.fixtures import dump
from test_jobs import job_doc, oracle, submit, wait_for

from localoperator import OWN_NAMESPACES, LocalOperator
from testjobs import sorted_output, word_input

ROUNDS = 10

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
        namespace_first = round_ % 2 == 0
        if namespace_first:
            create_namespace(kube, namespace)
        operator.spawn()
        try:
            if not namespace_first:
                create_namespace(kube, namespace)
            name = submit(kube, namespace, doc)
            job = wait_for(kube, namespace, name, ("Succeeded", "Failed"))
            assert job["status"]["phase"] == "Succeeded", (round_, job["status"])
            assert sorted_output(shared / f"out-{round_}") == expected, round_
        except BaseException:
            print(f"==== round {round_}: operator log\n{operator.log_tail(200)}")
            print(dump(kube, cluster.paths, namespace))
            raise
        finally:
            operator.stop()
            kube.delete(f"/api/v1/namespaces/{namespace}")
