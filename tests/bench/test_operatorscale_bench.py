"""Smoke run of the operator-at-scale benchmark with 20 pods on 3 simulated (kwok) nodes:
the operator creates every pod, the job's status counts them, the delete removes them, and
the benchmark leaves no node or namespace behind. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from localkube import cluster as clusters
from localkube import kwok
from localkube.fixtures import cluster

from testjobs import run_bench

__all__ = ["cluster"]


@pytest.mark.cluster
@pytest.mark.bench
def test_operator_scale_bench_creates_tracks_and_deletes_a_small_job(
    tmp_path: Path, cluster: clusters.Cluster
) -> None:
    result = run_bench("operatorscale.py", tmp_path, "--pods", "20", "--nodes", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all pods created" in result.stdout and "operator / baseline" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    (run,) = results["runs"]
    assert run["pods"] == 20 and results["baseline"][0]["pods"] == 20
    assert 0 < run["created_seconds"] <= run["ready_seconds"] <= run["status_seconds"]
    assert run["cleanup_seconds"] > 0
    assert run["operator_cpu_seconds"] > 0 and run["operator_peak_rss"] > 0
    assert run["operator_requests"] >= 20, run["requests_by_client"]  # a POST per pod
    assert run["operator_steady_cpu"] > 0
    assert run["api_429"] == 0 and run["throttling_lines"] == [], run["throttling_lines"]
    kube = cluster.client()
    try:
        nodes = kube.items("/api/v1/nodes", {"labelSelector": f"{kwok.LABEL}=true"})
        assert nodes == [], "the simulated nodes are deleted"
        namespaces = [n["metadata"]["name"] for n in kube.items("/api/v1/namespaces")]
        assert not [n for n in namespaces if "operatorscale" in n]
    finally:
        kube.close()
    assert list((tmp_path / "cache").glob("operator-*.log")), "the operator's log is kept"
