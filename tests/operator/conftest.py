"""Operator tests run against the localkube control plane (tests/cluster/localkube) and a
real operator process (tests/operator/localoperator.py) watching the test namespaces."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from localkube import apiclient
from localkube import cluster as clusters
from localkube.fixtures import cluster, failed, kube, namespace, pytest_runtest_makereport

from localoperator import ROOT, TEST_NAMESPACES, LocalOperator, install_crd

__all__ = ["cluster", "kube", "namespace", "pytest_runtest_makereport"]


@pytest.fixture(scope="session")
def crd(kube: apiclient.ApiClient) -> str:
    """The MapReduceJob CRD, installed (or updated) from crds/."""
    return install_crd(kube)


@pytest.fixture(scope="session")
def operator(cluster: clusters.Cluster, crd: str) -> Iterator[LocalOperator]:
    """The working tree's operator, watching the test namespaces, for the session."""
    del crd
    process = LocalOperator(
        cluster.paths, TEST_NAMESPACES, cluster.paths.logs / "operator-tests.log"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def job_namespace(
    request: pytest.FixtureRequest, namespace: str, operator: LocalOperator
) -> Iterator[str]:
    """A test namespace the operator watches; its log tail is printed if the test fails."""
    yield namespace
    if failed(request.node):
        print(f"==== operator log (tail)\n{operator.log_tail(120)}")


@pytest.fixture
def shared(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory the job's pods see at the same path: under the repository's ignored
    .cache/ (kept after a failing test, for its logs and outputs)."""
    path = ROOT / ".cache" / "operator-tests" / f"{request.node.name[:60]}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    yield path
    if not failed(request.node):
        shutil.rmtree(path, ignore_errors=True)
