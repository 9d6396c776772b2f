"""Fixtures of the kind tier: the cluster (one per session), a namespace per test that is
dumped when the test fails, and a job folder under ``.kind/data``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kindcluster import cluster, engine
from kindjobs import JobFolder, dump, kubectl
from localkube.fixtures import failed, pytest_runtest_makereport

__all__ = ["pytest_runtest_makereport"]


@pytest.fixture(scope="session")
def kind() -> Iterator[cluster.Tools]:
    """The kind cluster with the chart installed (created here unless already up)."""
    current = engine.current()
    was_up = current is not None and cluster.exists(cluster.tools(current))
    try:
        tools = cluster.up()
    except BaseException:
        if not was_up:  # a half-made cluster (nodes created, the image not loaded...) goes
            cluster.down()
        raise
    try:
        yield tools
    finally:
        if not was_up:
            cluster.down()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kind: cluster.Tools) -> Iterator[str]:
    """A namespace owned by one test; its jobs, pods, events and logs are printed if the
    test fails."""
    name = f"kind-{uuid.uuid4().hex[:6]}"
    kubectl(kind, "create", "namespace", name)
    yield name
    if failed(request.node):
        print(f"==== namespace {name}\n{dump(kind, name)}")
    kubectl(kind, "delete", "namespace", name, "--wait=false")


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> Iterator[JobFolder]:
    """The test job's folder under .kind/data (kept if the test fails)."""
    made = JobFolder.create()
    yield made
    if not failed(request.node):
        made.remove()
