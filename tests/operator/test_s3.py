"""A MapReduceJob reading and writing s3:// on the local control plane, against MinIO.

MinIO (built from its Go module by `make s3-server`) listens on the pods' gateway, so job
pods reach it as they would reach S3 or an S3-compatible store. Credentials travel the
Kubernetes way: a Secret named by `spec.storage.credentialsSecret`, referenced from every
job pod's environment, never in the custom resource.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localkube import apiclient, network
from test_jobs import job_doc, oracle, submit, wait_for

import s3server
from testjobs import BOOKS

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def minio() -> Iterator[s3server.MinioServer]:
    if not s3server.built():
        pytest.fail(s3server.SKIP_REASON)  # `make test` builds it first: missing is a defect
    with s3server.MinioServer(host=str(network.GATEWAY)) as server:
        yield server


def fresh_bucket(minio: s3server.MinioServer) -> tuple[str, Any]:
    """A new bucket on the test server, and a client of it."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client = minio.client()
    client.create_bucket(Bucket=bucket)
    return bucket, client


def credentials_secret(
    kube: apiclient.ApiClient, namespace: str, minio: s3server.MinioServer
) -> str:
    """The Secret ``s3-credentials`` with the server's credentials, for
    ``spec.storage.credentialsSecret``."""
    kube.create(
        apiclient.resource_path("secrets", namespace),
        {
            "metadata": {"name": "s3-credentials"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": minio.access_key,
                "AWS_SECRET_ACCESS_KEY": minio.secret_key,
            },
        },
    )
    return "s3-credentials"


def test_a_job_reads_and_writes_s3_with_credentials_from_a_secret(
    kube: apiclient.ApiClient,
    job_namespace: str,
    tmp_path: Path,
    minio: s3server.MinioServer,
) -> None:
    bucket, client = fresh_bucket(minio)
    for book in sorted(BOOKS.glob("*.txt")):
        client.upload_file(str(book), bucket, f"books/{book.name}")
    credentials_secret(kube, job_namespace, minio)
    doc = job_doc(
        "s3",
        {"builtin": "wordcount"},
        [f"s3://{bucket}/books/*.txt"],
        f"s3://{bucket}/out",
        storage={
            "endpoint": minio.endpoint,
            "region": "us-east-1",
            "credentialsSecret": "s3-credentials",
        },
    )
    doc["spec"]["input"]["splitSize"] = "512Ki"
    name = submit(kube, job_namespace, doc)
    job = wait_for(kube, job_namespace, name, ("Succeeded", "Failed"))
    assert job["status"]["phase"] == "Succeeded", job["status"]
    lines = s3server.committed_lines(client, bucket, "out/")
    local = dict(doc, spec={**doc["spec"], "input": {"paths": [str(BOOKS / "*.txt")]}})
    local["spec"].pop("storage")
    assert sorted(lines) == oracle(tmp_path, local)
    master = kube.get(apiclient.resource_path("pods", job_namespace, f"{name}-master"))
    env = {e["name"]: e for e in master["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-credentials"
    assert minio.secret_key not in str(
        kube.get(f"/apis/kubemr.io/v1alpha1/namespaces/{job_namespace}/mapreducejobs/{name}")
    )
