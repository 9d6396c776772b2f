"""kubemr on a kind cluster: build and load the image, helm install, run wordcount.

Needs a running Docker engine and the `kind` command; where either is missing the test is
*skipped* with the reason (it never counts as a pass). Run it alone with
`make test-kind` (docs/install.md). It creates the cluster from kind-config.yaml, builds
images/Dockerfile, loads the image into the nodes, installs charts/kubemr, runs
examples/wordcount-job.yaml over the Gutenberg books (through a hostPath volume that
kind-config.yaml mounts on every node), compares the output with the sequential oracle,
and deletes the cluster.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testjobs import BOOKS, ROOT, run_cli, sorted_output, write_manifest

pytestmark = pytest.mark.kind

CLUSTER = "kubemr"
IMAGE = "kubemr:kind-test"
DATA = ROOT / ".cache" / "kind-data"
JOB_DEADLINE = 600.0


def _docker_ready() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    if shutil.which("kind") is None:
        return "kind is not installed (go install sigs.k8s.io/kind@latest)"
    if shutil.which("helm") is None and not (ROOT / ".cluster" / "bin" / "helm").exists():
        return "helm is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return f"no Docker engine answers `docker info`: {info.stderr.strip()[:200]}"
    return None


def run(*args: str, stdin: str = "") -> str:
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def kind_cluster() -> Iterator[Path]:
    missing = _docker_ready()
    if missing is not None:
        pytest.skip(f"kind tests need Docker and kind: {missing}")
    DATA.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BOOKS, DATA / "books", dirs_exist_ok=True)
    kubeconfig = ROOT / ".cache" / "kind-kubeconfig"
    run(
        "kind",
        "create",
        "cluster",
        "--config",
        "kind-config.yaml",
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "120s",
    )
    try:
        yield kubeconfig
    finally:
        run("kind", "delete", "cluster", "--name", CLUSTER)


def test_wordcount_on_kind(kind_cluster: Path, tmp_path: Path) -> None:
    helm = shutil.which("helm") or str(ROOT / ".cluster" / "bin" / "helm")
    kubectl = ["kubectl", "--kubeconfig", str(kind_cluster)]
    run("docker", "build", "-f", "images/Dockerfile", "-t", IMAGE, ".")
    run("kind", "load", "docker-image", IMAGE, "--name", CLUSTER)
    repository, tag = IMAGE.split(":")
    run(
        helm,
        "--kubeconfig",
        str(kind_cluster),
        "install",
        "kubemr",
        "charts/kubemr",
        "-n",
        "kubemr-system",
        "--create-namespace",
        "--wait",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
    )
    doc = yaml.safe_load((ROOT / "examples" / "wordcount-job.yaml").read_text())
    job = copy.deepcopy(doc)
    output = f"out-{uuid.uuid4().hex[:6]}"
    job["spec"]["input"]["paths"] = ["/kubemr-data/books/*.txt"]
    job["spec"]["output"]["path"] = f"/kubemr-data/{output}"
    job["spec"]["volumes"] = [
        {"name": "data", "hostPath": {"path": "/kubemr-data", "type": "Directory"}}
    ]
    job["spec"]["volumeMounts"] = [{"name": "data", "mountPath": "/kubemr-data"}]
    # The image runs as UID 65532; kind's hostPath directory must let it write.
    (DATA).chmod(0o777)
    run(*kubectl, "apply", "-f", "-", stdin=yaml.safe_dump(job))
    deadline = time.monotonic() + JOB_DEADLINE
    phase = ""
    while time.monotonic() < deadline:
        status = json.loads(run(*kubectl, "get", "mrj", "wordcount", "-o", "json")).get(
            "status", {}
        )
        phase = status.get("phase", "")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(2)  # polling the job's phase under a named deadline
    assert phase == "Succeeded", run(*kubectl, "describe", "mrj", "wordcount")
    local = copy.deepcopy(doc)
    local["spec"]["input"]["paths"] = [str(BOOKS / "*.txt")]
    local["spec"]["output"] = {"path": str(tmp_path / "oracle")}
    result = run_cli("run", "--sequential", "--quiet", str(write_manifest(tmp_path, local)))
    assert result.returncode == 0, result.stderr
    assert sorted_output(DATA / output) == sorted_output(tmp_path / "oracle")
