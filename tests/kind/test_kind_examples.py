"""Every example manifest, unmodified, on the kind cluster, the way docs/install.md says.

`make kind-examples` (here: :mod:`kindcluster.examples`) lays ``.kind/data`` out like the
checkout and sets the chart's job defaults of examples/kind-values.yaml; then each
``examples/*-job.yaml`` is applied exactly as it is in the repository. Every job must
succeed with the output of ``kubemr run --sequential`` of the same manifest here.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kindcluster import cluster, examples
from kindjobs import kubectl, oracle_of, wait_phase

from testjobs import ROOT, sorted_output

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1500)]

MANIFESTS = sorted((ROOT / "examples").glob("*-job.yaml"))


@pytest.fixture
def staged(kind: cluster.Tools) -> Iterator[Path]:
    """.kind/data laid out for the examples and the chart's job defaults set, for one test."""
    work = examples.stage()
    examples.install_values(kind)
    try:
        yield work
    finally:
        examples.restore_values(kind)


def local_oracle(tmp_path: Path, doc: dict[str, Any]) -> list[str]:
    """The same manifest, sequentially, from the repository root (gzip input made here)."""
    local = copy.deepcopy(doc)
    if "input" in local["spec"]:
        local["spec"]["input"]["paths"] = [
            str(examples.WORK / p) if p.startswith(examples.GZIP_BOOKS) else p
            for p in local["spec"]["input"]["paths"]
        ]
    folder = tmp_path / doc["metadata"]["name"]
    folder.mkdir()
    return oracle_of(folder, local)


def test_every_example_runs_unmodified_and_matches_the_sequential_run(
    kind: cluster.Tools, namespace: str, staged: Path, tmp_path: Path
) -> None:
    assert len(MANIFESTS) >= 9, MANIFESTS
    docs = {path.name: yaml.safe_load(path.read_text()) for path in MANIFESTS}
    started = time.monotonic()
    for path in MANIFESTS:  # applied as they are: kubectl reads the repository's file
        kubectl(kind, "-n", namespace, "apply", "-f", str(path))
    took: dict[str, float] = {}
    for file, doc in docs.items():
        name = doc["metadata"]["name"]
        done = wait_phase(kind, namespace, name)
        took[file] = time.monotonic() - started
        assert done["status"]["phase"] == "Succeeded", (file, json.dumps(done["status"]))
        output = staged / doc["spec"]["output"]["path"]
        assert sorted_output(output) == local_oracle(tmp_path, doc), file
    print("apply -> Succeeded, all applied at once:", {f: round(t) for f, t in took.items()})
