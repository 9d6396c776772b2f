"""Cluster tests: the fixtures come from the localkube harness (tests/cluster/localkube)."""

from __future__ import annotations

import pytest
from localkube.fixtures import cluster, kube, namespace, pytest_runtest_makereport

__all__ = ["cluster", "kube", "namespace", "pytest_runtest_makereport"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run test_lifecycle.py last: it stops and restarts the session's cluster."""
    items.sort(key=lambda item: item.nodeid.split("::")[0].endswith("test_lifecycle.py"))
