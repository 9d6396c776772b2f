"""A multi-step job whose input, intermediate output and output are on S3 (MinIO,
tests/support/s3server.py): the steps chain through records under the output prefix's
``_temporary``, nothing of it is left, and the output equals the local sequential run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from kubemr import spec, stores
from kubemr.outputdir import OutputDir

import s3server
from testjobs import APPS, Runner, manifest, run_cli, sorted_output, word_input, write_manifest


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh bucket's name and the manifest's ``spec.storage`` for it."""
    if not s3server.built():
        pytest.skip(s3server.SKIP_REASON)
    with s3server.MinioServer() as server:
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        name = f"t-{uuid.uuid4().hex[:12]}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=name)
        yield name, {"endpoint": server.endpoint}


def test_a_two_step_job_on_s3_equals_the_local_sequential_run(
    bucket: tuple[str, dict[str, str]], tmp_path: Path, run_job: Runner
) -> None:
    name, storage = bucket
    app = str(APPS / "twostep.py")
    local = word_input(tmp_path, files=2, lines=300)
    steps = [{"reduceTasks": 2}, {"app": {"module": f"{app}:TopByLength"}, "reduceTasks": 2}]
    doc = manifest(
        "steps-s3", {"module": f"{app}:CountWords"}, local, tmp_path / "seq", steps=steps
    )
    result = run_cli("run", str(write_manifest(tmp_path, doc)), "--sequential")
    assert result.returncode == 0, result.stderr

    output = f"s3://{name}/out/chain"
    doc["spec"]["output"] = {"path": output}
    doc["spec"]["storage"] = storage
    doc["spec"]["mapper"] = doc["spec"]["reducer"] = {"replicas": 2}
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    out = OutputDir(output, spec.StorageSpec.model_validate(storage))
    names = sorted(stores.basename(e.path) for e in out.store.listdir(output))
    assert names == ["_SUCCESS", "_summary.json", "part-00000", "part-00001"]  # no _temporary
    lines = sorted(
        line for part in out.parts() for line in out.read_part(part).decode().splitlines()
    )
    assert lines == sorted_output(tmp_path / "seq")
