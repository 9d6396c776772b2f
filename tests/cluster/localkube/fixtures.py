"""pytest fixtures for cluster tests: one cluster per session, one namespace per test.

``cluster`` reuses a cluster started by ``make cluster-up`` (and leaves it
running) or starts one for the session and stops it at the end, also on failure
or Ctrl-C. ``namespace`` creates a fresh namespace, waits for its default
service account, and deletes it after the test; when the test failed it first
prints every pod's status and container logs and the namespace's events.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Generator, Iterator

import pytest

from localkube import apiclient, deadlines, layout, workloads
from localkube import cluster as clusters

STARTED = pytest.StashKey[layout.Layout]()
"""On the session's config when the session started its cluster (rather than reused a
developer's): then nothing of it may be left when the session ends."""


def started_by_session(config: pytest.Config) -> layout.Layout | None:
    """The cluster this session started, if it started one."""
    return config.stash.get(STARTED, None)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[clusters.Cluster]:
    paths = layout.Layout.default()
    existing = clusters.running(paths)
    if existing is not None:
        yield existing
        return
    started = clusters.up(paths, quiet=True)
    request.config.stash[STARTED] = paths
    try:
        yield started
    finally:
        clusters.down(paths)


@pytest.fixture(scope="session")
def kube(cluster: clusters.Cluster) -> Iterator[apiclient.ApiClient]:
    """An admin API client for the session's cluster."""
    client = cluster.client()
    yield client
    client.close()


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, for the namespace fixture's dump."""
    del call
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


def failed(item: pytest.Item) -> bool:
    """Whether ``item``'s test body failed (for fixtures that dump state on failure)."""
    return item.stash.get(_FAILED, False)


def dump(client: apiclient.ApiClient, paths: layout.Layout, namespace: str) -> str:
    """Pod statuses, container logs and events of ``namespace``, for a failure report."""
    lines = [f"==== namespace {namespace}: pods"]
    for pod in client.items(apiclient.resource_path("pods", namespace)):
        lines.append(f"--- pod {pod['metadata']['name']}: {json.dumps(pod.get('status'))}")
        for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            log = workloads.container_log(paths, pod, container["name"])
            lines.append(f"--- log of {container['name']}:\n{log[-4000:]}")
    lines.append(f"==== namespace {namespace}: events")
    for event in client.items(apiclient.resource_path("events", namespace)):
        involved = event.get("involvedObject", {})
        lines.append(
            f"{event.get('type')} {involved.get('kind')}/{involved.get('name')} "
            f"{event.get('reason')}: {event.get('message')}"
        )
    return "\n".join(lines)


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, kube: apiclient.ApiClient, cluster: clusters.Cluster
) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (dumped first if the test failed)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"{slug}-{uuid.uuid4().hex[:5]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadlines.poll(
        deadlines.NAMESPACE_READY,
        lambda: kube.get(apiclient.resource_path("serviceaccounts", name, "default")),
        f"the default service account of namespace {name}",
    )
    yield name
    if request.node.stash.get(_FAILED, False):
        print(dump(kube, cluster.paths, name))
    kube.delete(f"/api/v1/namespaces/{name}")
