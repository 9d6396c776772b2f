"""Checks for the whole test session: it leaves no process, pod network or file behind.

A snapshot is taken when the session starts (:mod:`leftovers`); when it ends, after
every fixture was torn down, whatever the session started and is still there is listed
and fails the run (the processes are then killed, so that one leak does not outlive the
report). New files outside ignored folders are counted on CI only (``CI`` set, as for
``.ci/run``): on a developer's machine they may be the developer's own, written while
the suite ran.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from localkube import fixtures, network, processes

import leftovers
from testjobs import ROOT

_SNAPSHOT = pytest.StashKey[leftovers.Snapshot]()

# Property tests check properties, not speed: on a loaded 2-core machine one example can
# take more than Hypothesis's default 200 ms deadline, or generate slowly.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The kind tier runs last: its cluster (three node containers) is created by its first
    test and deleted at the end of the session, so it never runs beside the others."""
    items.sort(key=lambda item: item.get_closest_marker("kind") is not None)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SNAPSHOT] = leftovers.start(ROOT)


def pytest_sessionfinish(session: pytest.Session) -> None:
    snapshot = session.config.stash.get(_SNAPSHOT, None)
    if snapshot is None:
        return
    cluster = fixtures.started_by_session(session.config)
    found = leftovers.find(
        snapshot,
        ROOT,
        cluster_markers=(processes.MARKER, str(cluster.root)) if cluster else None,
        networks=network.leftovers() if cluster else None,
        files=bool(os.environ.get("CI")),
    )
    if not found:
        return
    leftovers.stop(snapshot)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["the test session left behind (and must not):", *found]
    if reporter is not None:
        reporter.write_sep("=", "left behind", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
