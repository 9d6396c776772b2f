"""Fixtures for runtime integration tests: real `kubemr run` processes, and the
sequential oracle to compare with."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from roles import Job

from testjobs import Runner, run_cli, sorted_output, write_manifest


@pytest.fixture
def run_job(tmp_path: Path) -> Runner:
    """Run a manifest dict with `kubemr run` (extra CLI flags as positional args)."""

    def run(doc: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
        path = write_manifest(tmp_path, doc)
        return run_cli("run", str(path), "--quiet", *flags)

    return run


_ORACLE: dict[str, list[str]] = {}


@pytest.fixture
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], list[str]]:
    """Sorted output of the sequential runner for a manifest (cached per app+input)."""

    def compute(doc: dict[str, Any]) -> list[str]:
        spec = doc["spec"]
        cache_key = repr((spec["app"], spec["input"]["paths"]))
        if cache_key not in _ORACLE:
            directory = tmp_path_factory.mktemp("oracle")
            seq = {**doc, "spec": {**spec, "output": {"path": str(directory / "out")}}}
            result = run_cli("run", str(write_manifest(directory, seq)), "--sequential")
            assert result.returncode == 0, result.stderr
            _ORACLE[cache_key] = sorted_output(directory / "out")
        return _ORACLE[cache_key]

    return compute


@pytest.fixture
def job_roles(tmp_path: Path) -> Iterator[Callable[..., Job]]:
    """Start a job's roles by hand (:class:`roles.Job`; a keyword ``host`` sets the
    address they use); whatever is left is killed."""
    jobs: list[Job] = []

    def start(doc: dict[str, Any], host: str = "127.0.0.1") -> Job:
        jobs.append(Job(tmp_path, doc, host))
        return jobs[-1]

    yield start
    for job in jobs:
        job.stop()
