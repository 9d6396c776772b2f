"""Cluster tests: the fixtures come from the localkube harness (tests/cluster/localkube)."""

from localkube.fixtures import cluster, kube, namespace, pytest_runtest_makereport

__all__ = ["cluster", "kube", "namespace", "pytest_runtest_makereport"]
