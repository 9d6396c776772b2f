"""Operator tests run against the localkube control plane (tests/cluster/localkube)."""

from localkube.fixtures import cluster, kube, namespace, pytest_runtest_makereport

__all__ = ["cluster", "kube", "namespace", "pytest_runtest_makereport"]
