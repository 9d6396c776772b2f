"""``kubemr submit``, ``status``, ``logs`` and ``delete`` against the real operator on the
local control plane.

The apps live outside the repository (in the test's temporary directory) and are named
by references the pods can resolve only from the shipped bundle; the requirement
(``inflection``, pure Python, from PyPI) is resolved into a wheel here and installed by
the pods with ``pip --no-index``: it is not installed in the project's environment, which
the pods run. Every successful output is compared, sorted, with a sequential run.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import random
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubemr import bundles
from localkube import apiclient, deadlines
from localkube import cluster as clusters
from test_s3 import credentials_secret, fresh_bucket, minio

import s3server
from testjobs import ROOT, run_cli, sorted_output, write_manifest

pytestmark = pytest.mark.cluster
__all__ = ["minio"]  # the S3 server fixture, shared with test_s3

SUBMIT_DEADLINE = deadlines.Deadline("submit_finished", 240.0)
GARBAGE_COLLECTED = deadlines.Deadline("garbage_collected", 60.0)
REQUIREMENT = "inflection==0.5.1"

FIRST_LETTERS = """
import os
import time


class FirstLetters:
    def __init__(self, gate=""):
        self.gate = gate  # a file the reduce waits for, if given

    def map(self, key, line):
        for word in line.split():
            yield word[0], 1

    def reduce(self, key, values):
        while self.gate and not os.path.exists(self.gate):
            time.sleep(0.05)
        yield key, sum(values)
"""

SINGULARS = """
import inflection


class Singulars:
    def map(self, key, line):
        for word in line.split():
            yield inflection.singularize(word), 1

    def reduce(self, key, values):
        yield key, sum(values)
"""

VOCABULARY = [
    "books",
    "book",
    "mice",
    "mouse",
    "geese",
    "children",
    "child",
    "cats",
    "people",
    "octopi",
    "leaves",
    "wolves",
]


def words(directory: Path) -> str:
    """Deterministic input of English plurals and singulars; its glob."""
    rng = random.Random(11)
    directory.mkdir()
    for number in range(2):
        rows = (" ".join(rng.choices(VOCABULARY, k=8)) for _ in range(800))
        (directory / f"words{number}.txt").write_text("".join(f"{r}\n" for r in rows))
    return str(directory / "*.txt")


def manifest(name: str, module: str, paths: str, output: Path, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": {
            "app": {"module": module},
            "input": {"paths": [paths], "splitSize": "16Ki"},
            "output": {"path": str(output)},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 1},
            **spec,
        },
    }


KUBEMR = [sys.executable, "-m", "kubemr_client"]
"""The real ``kubemr`` command line, with the client's commands."""


def kubeconfig(cluster: clusters.Cluster) -> dict[str, str]:
    """This environment with the cluster's kubeconfig as the current one."""
    return {**os.environ, "KUBECONFIG": str(cluster.paths.kubeconfig)}


def kubemr(cluster: clusters.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``kubemr`` against the cluster and wait."""
    return subprocess.run(
        [*KUBEMR, *args],
        cwd=ROOT,
        env=kubeconfig(cluster),
        text=True,
        capture_output=True,
        timeout=SUBMIT_DEADLINE.seconds,
        check=False,
    )


def oracle(tmp_path: Path, doc: dict[str, Any], module: str, env: dict[str, str]) -> list[str]:
    local = yaml.safe_load(yaml.safe_dump(doc))
    local["spec"]["app"]["module"] = module
    local["spec"].pop("cleanupPolicy", None)
    local["spec"]["output"] = {"path": str(tmp_path / "oracle"), "overwrite": True}
    result = run_cli(
        "run", "--sequential", "--quiet", str(write_manifest(tmp_path, local)), env=env
    )
    assert result.returncode == 0, result.stderr
    return sorted_output(tmp_path / "oracle")


def job(kube: apiclient.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(
        f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs/{name}"
    )
    return found


def bundle_config_map(kube: apiclient.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    reference = job(kube, namespace, name)["spec"]["app"]["bundle"]["configMap"]
    return kube.get(apiclient.resource_path("configmaps", namespace, reference))


def test_submit_ships_a_single_file_app_and_status_logs_delete_work(
    kube: apiclient.ApiClient,
    cluster: clusters.Cluster,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
) -> None:
    app = tmp_path / "mine" / "firstletters.py"
    app.parent.mkdir()
    app.write_text(FIRST_LETTERS)
    doc = manifest(
        "letters",
        "mine/firstletters.py:FirstLetters",
        words(shared / "in"),
        shared / "out",
        cleanupPolicy="KeepAll",
    )
    gate = shared / "go"
    doc["spec"]["app"]["args"] = {"gate": str(gate)}
    path = write_manifest(tmp_path, doc)
    # Ctrl-C while it follows the job: the command detaches, the job goes on to the end.
    with subprocess.Popen(
        [*KUBEMR, "submit", str(path), "--app", str(app), "-n", job_namespace],
        cwd=ROOT,
        env=kubeconfig(cluster),
        stderr=subprocess.PIPE,
        text=True,
    ) as submitter:
        stderr = submitter.stderr
        assert stderr is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")))
        reader.start()
        deadlines.poll(
            SUBMIT_DEADLINE,
            lambda: True if any("submitted mapreducejob" in line for line in lines) else None,
            "kubemr submit creates the job and follows it",
        )
        submitter.send_signal(signal.SIGINT)
        assert submitter.wait(SUBMIT_DEADLINE.seconds) == 130, lines
        reader.join()
    assert "detached; the job keeps running" in lines[-1], lines

    def mapper_serves() -> str | None:
        log = kubemr(
            cluster, "logs", "letters", "--role", "mapper", "--index", "1", "-n", job_namespace
        )
        return log.stdout if "letters-mapper-1 (mapper) serving shuffle at" in log.stdout else None

    # The job waits on the gate until mapper-1 has started: on a loaded machine the other
    # mapper could do every map, and the job end, before mapper-1's process logged a line.
    deadlines.poll(SUBMIT_DEADLINE, mapper_serves, "mapper-1 serving (kubemr logs)")
    gate.touch()

    def finished() -> dict[str, Any] | None:
        status = job(kube, job_namespace, "letters").get("status", {})
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    assert deadlines.poll(SUBMIT_DEADLINE, finished, "letters finished")["phase"] == "Succeeded"
    assert sorted_output(shared / "out") == oracle(tmp_path, doc, f"{app}:FirstLetters", {})
    submitted = job(kube, job_namespace, "letters")
    assert submitted["spec"]["app"]["module"] == "firstletters.py:FirstLetters"
    conditions = {c["type"]: c["status"] for c in submitted["status"]["conditions"]}
    assert conditions["AppInstalled"] == "True"
    cm = bundle_config_map(kube, job_namespace, "letters")
    assert cm["immutable"] is True
    assert cm["metadata"]["ownerReferences"][0]["uid"] == submitted["metadata"]["uid"]
    data = base64.b64decode(cm["binaryData"]["bundle.zip"])
    assert zipfile.ZipFile(io.BytesIO(data)).read("app/firstletters.py").decode() == FIRST_LETTERS

    status = kubemr(cluster, "status", "letters", "-n", job_namespace)
    assert status.returncode == 0, status.stderr
    assert f"{job_namespace}/letters: Succeeded (Completed)" in status.stdout
    assert "AppInstalled=True" in status.stdout
    master_log = kubemr(cluster, "logs", "letters", "-n", job_namespace)
    assert master_log.returncode == 0, master_log.stderr
    assert "master" in master_log.stdout and master_log.stdout.strip()
    mapper_log = kubemr(
        cluster, "logs", "letters", "--role", "mapper", "--index", "1", "-n", job_namespace
    )
    assert mapper_log.returncode == 0, mapper_log.stderr
    assert "letters-mapper-1 (mapper) serving shuffle at" in mapper_log.stdout, mapper_log.stdout
    install_log = kubemr(
        cluster,
        "logs",
        "letters",
        "--role",
        "mapper",
        "--container",
        "install-app",
        "-n",
        job_namespace,
    )
    assert "installed the code bundle" in install_log.stdout, install_log.stderr
    missing = kubemr(
        cluster, "logs", "letters", "--role", "reducer", "--index", "7", "-n", job_namespace
    )
    assert missing.returncode == 2 and "no reducer pod with index 7" in missing.stderr

    # The same name again, with other code: refused, and its new bundle is not left behind.
    app.write_text(FIRST_LETTERS + "# changed\n")
    again = kubemr(cluster, "submit", str(path), "--app", str(app), "-n", job_namespace)
    assert again.returncode == 2 and "creating MapReduceJob" in again.stderr, again.stderr
    bundles_left = [
        c["metadata"]["name"]
        for c in kube.items(apiclient.resource_path("configmaps", job_namespace))
        if c["metadata"]["name"].startswith("letters-app-")
    ]
    assert bundles_left == [cm["metadata"]["name"]]

    deleted = kubemr(cluster, "delete", "letters", "-n", job_namespace)
    assert deleted.returncode == 0, deleted.stderr
    name = cm["metadata"]["name"]

    def bundle_gone() -> bool | None:
        try:
            kube.get(apiclient.resource_path("configmaps", job_namespace, name))
        except apiclient.ApiError as error:
            return True if apiclient.is_not_found(error) else None
        return None

    deadlines.poll(GARBAGE_COLLECTED, bundle_gone, f"the bundle ConfigMap {name} collected")
    again = kubemr(cluster, "status", "letters", "-n", job_namespace)
    assert again.returncode == 2 and "no MapReduceJob" in again.stderr


def test_submit_ships_a_package_with_a_requirement_the_pods_install_without_an_index(
    kube: apiclient.ApiClient,
    cluster: clusters.Cluster,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
) -> None:
    assert importlib.util.find_spec("inflection") is None, (
        "the requirement must not be installed where the pods run, or nothing is proven"
    )
    package = tmp_path / "plurals"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "count.py").write_text(SINGULARS)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{REQUIREMENT}\n")
    doc = manifest("plurals", "plurals.count:Singulars", words(shared / "in"), shared / "out")
    path = write_manifest(tmp_path, doc)
    result = kubemr(
        cluster,
        "submit",
        str(path),
        "--app",
        str(package),
        "--requirements",
        str(requirements),
        "-n",
        job_namespace,
    )
    assert result.returncode == 0, result.stderr
    submitted = job(kube, job_namespace, "plurals")
    assert submitted["spec"]["app"]["requirements"] == [REQUIREMENT]
    data = base64.b64decode(
        bundle_config_map(kube, job_namespace, "plurals")["binaryData"]["bundle.zip"]
    )
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "wheels/inflection-0.5.1-py2.py3-none-any.whl" in names

    # The oracle imports the same package and the same wheel, installed here.
    local = tmp_path / "local"
    bundles.install_requirements(local, bundles.unpack(data, local))
    env = {"PYTHONPATH": f"{local / 'app'}:{local / 'site'}"}
    expected = oracle(tmp_path, doc, "plurals.count:Singulars", env)
    assert sorted_output(shared / "out") == expected
    assert "mouse\t" in "\n".join(expected), "the requirement really ran (mice -> mouse)"


def test_a_requirement_the_pods_cannot_install_fails_the_job_with_a_condition(
    kube: apiclient.ApiClient,
    cluster: clusters.Cluster,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
) -> None:
    app = tmp_path / "firstletters.py"
    app.write_text(FIRST_LETTERS)
    doc = manifest(
        "wrongpython", "firstletters.py:FirstLetters", words(shared / "in"), shared / "out"
    )
    doc["spec"]["app"]["requirements"] = ["msgpack"]  # a binary wheel: one per Python
    path = write_manifest(tmp_path, doc)
    # Resolved for a Python the pods do not run: the wheel is cp312, the pods are 3.11.
    result = kubemr(
        cluster,
        "submit",
        str(path),
        "--app",
        str(app),
        "--python-version",
        "3.12",
        "-n",
        job_namespace,
    )
    assert result.returncode == 1, result.stderr
    status = job(kube, job_namespace, "wrongpython")["status"]
    assert status["phase"] == "Failed" and status["reason"] == "AppInstallFailed", status
    assert "No matching distribution found for msgpack" in status["message"]
    installed = next(c for c in status["conditions"] if c["type"] == "AppInstalled")
    assert installed["status"] == "False"
    assert "No matching distribution found for msgpack" in installed["message"]
    assert not (shared / "out").exists()


def test_a_bundle_too_large_for_a_config_map_goes_to_the_jobs_s3_storage(
    kube: apiclient.ApiClient,
    cluster: clusters.Cluster,
    job_namespace: str,
    shared: Path,
    tmp_path: Path,
    minio: s3server.MinioServer,
) -> None:
    bucket, client = fresh_bucket(minio)
    secret = credentials_secret(kube, job_namespace, minio)
    package = tmp_path / "letters"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(FIRST_LETTERS)
    # Incompressible data: the bundle outgrows a ConfigMap.
    (package / "table.bin").write_bytes(random.Random(5).randbytes(bundles.CONFIG_MAP_LIMIT))
    doc = manifest(
        "bigapp",
        "letters.app:FirstLetters",
        words(shared / "in"),
        shared / "unused",
        storage={
            "endpoint": minio.endpoint,
            "region": "us-east-1",
            "credentialsSecret": secret,
        },
    )
    doc["spec"]["output"]["path"] = f"s3://{bucket}/out"
    path = write_manifest(tmp_path, doc)
    result = subprocess.run(
        [*KUBEMR, "submit", str(path), "--app", str(package), "-n", job_namespace],
        cwd=ROOT,
        env={**kubeconfig(cluster), **minio.client_env()},
        text=True,
        capture_output=True,
        timeout=SUBMIT_DEADLINE.seconds,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    bundle = job(kube, job_namespace, "bigapp")["spec"]["app"]["bundle"]
    assert "configMap" not in bundle
    key = f".kubemr/bundles/{bundle['sha256']}.zip"
    assert bundle["url"] == f"s3://{bucket}/{key}"
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] > bundles.CONFIG_MAP_LIMIT
    lines: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="out/"):
        for item in page.get("Contents", []):
            if "/part-" in item["Key"]:
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                lines += body.decode().splitlines()
    local = yaml.safe_load(yaml.safe_dump(doc))
    local["spec"].pop("storage")
    env = {"PYTHONPATH": str(tmp_path)}
    assert sorted(lines) == oracle(tmp_path, local, "letters.app:FirstLetters", env)
