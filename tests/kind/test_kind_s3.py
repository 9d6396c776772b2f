"""S3 in and out on kind, from a namespace enforcing the restricted Pod Security Standard.

The restricted standard forbids hostPath volumes, so this job's data lives in MinIO: the
binary tests/support/s3server.py builds (``make s3-server``), as an image of its own,
loaded into the nodes and run as a pod in a namespace of the test. The job's pods reach
it by its Service name through the cluster's DNS and kube-proxy; the test reaches it
through ``kubectl port-forward``, as a user would.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from kindcluster import cluster, images
from kindjobs import apply, get_json, kubectl, oracle_of, wait_phase
from localkube import deadlines

import s3server
from testjobs import BOOKS

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

MINIO_IMAGE = "kubemr.local/minio:" + s3server.VERSION.rsplit("-", 1)[-1]
MINIO_PORT = 9000
MINIO_READY = deadlines.Deadline("kind_minio_ready", 180.0)
FORWARD_READY = deadlines.Deadline("kind_port_forward", 60.0)
REGION = "us-east-1"


def minio_manifests(namespace: str, user: str, password: str) -> str:
    pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: minio, namespace: {namespace}, labels: {{app: minio}}}}
spec:
  securityContext: {{runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, runAsNonRoot: true}}
  containers:
  - name: minio
    image: {MINIO_IMAGE}
    imagePullPolicy: Never
    args: [server, /data, --address, ":{MINIO_PORT}", --quiet]
    env:
    - {{name: MINIO_ROOT_USER, value: {user}}}
    - {{name: MINIO_ROOT_PASSWORD, value: {password}}}
    - {{name: MINIO_BROWSER, value: "off"}}
    - {{name: MINIO_UPDATE, value: "off"}}
    - {{name: HOME, value: /data}}
    readinessProbe:
      httpGet: {{path: /minio/health/ready, port: {MINIO_PORT}}}
      periodSeconds: 1
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: minio, namespace: {namespace}}}
spec:
  selector: {{app: minio}}
  ports: [{{port: {MINIO_PORT}, targetPort: {MINIO_PORT}}}]
"""
    return pod


class Minio:
    """MinIO as a pod of the kind cluster, and a boto3 client through a port-forward."""

    def __init__(self, tools: cluster.Tools) -> None:
        self.tools = tools
        self.namespace = f"kind-s3-{uuid.uuid4().hex[:6]}"
        self.user, self.password = "kubemr-test", secrets.token_hex(16)
        self.endpoint = f"http://minio.{self.namespace}.svc.cluster.local:{MINIO_PORT}"
        """The address the job's pods use."""
        self.forward: subprocess.Popen[str] | None = None

    def start(self) -> Any:
        binary = {"/usr/bin/minio": s3server.MINIO}
        images.from_files(
            self.tools.engine, "minio", [MINIO_IMAGE], binary, ['ENTRYPOINT ["/usr/bin/minio"]']
        )
        subprocess.run(
            [
                str(self.tools.kind),
                "load",
                "docker-image",
                MINIO_IMAGE,
                "--name",
                cluster.CLUSTER_NAME,
            ],
            env=self.tools.engine.env,
            check=True,
            capture_output=True,
        )
        kubectl(self.tools, "create", "namespace", self.namespace)
        kubectl(
            self.tools,
            "apply",
            "-f",
            "-",
            stdin=minio_manifests(self.namespace, self.user, self.password),
        )
        kubectl(
            self.tools,
            "-n",
            self.namespace,
            "wait",
            "pod/minio",
            "--for=condition=Ready",
            f"--timeout={MINIO_READY.seconds:g}s",
        )
        self.forward = subprocess.Popen(
            [
                *self.tools.kubectl_command(),
                "-n",
                self.namespace,
                "port-forward",
                "svc/minio",
                f":{MINIO_PORT}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.forward.stdout is not None
        line = self.forward.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"kubectl port-forward said: {line}"
        local = f"http://127.0.0.1:{found.group(1)}"
        deadlines.poll(
            FORWARD_READY,
            lambda: (
                urllib.request.urlopen(f"{local}/minio/health/ready", timeout=2).status == 200
                or None
            ),
            "MinIO through the port-forward",
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=local,
            aws_access_key_id=self.user,
            aws_secret_access_key=self.password,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.forward is not None:
            self.forward.terminate()
            self.forward.wait(10)
            if self.forward.stdout is not None:
                self.forward.stdout.close()
        kubectl(self.tools, "delete", "namespace", self.namespace, "--wait=false")


@pytest.fixture(scope="module")
def minio(kind: cluster.Tools) -> Iterator[tuple[Minio, Any]]:
    if not s3server.built():
        pytest.fail(s3server.SKIP_REASON)  # `make test` builds it first: missing is a defect
    server = Minio(kind)
    try:
        yield server, server.start()
    finally:
        server.stop()


def test_a_restricted_namespace_runs_a_job_from_s3_to_s3(
    kind: cluster.Tools, namespace: str, minio: tuple[Minio, Any], tmp_path: Path
) -> None:
    server, client = minio
    labels = [
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]
    kubectl(kind, "label", "namespace", namespace, *labels)
    refused = subprocess.run(  # admission really enforces it: a root pod is refused
        [
            *kind.kubectl_command(),
            "-n",
            namespace,
            "run",
            "not-restricted",
            "--image=x",
            "--restart=Never",
            "--command",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for book in sorted(BOOKS.glob("*.txt")):
        client.upload_file(str(book), bucket, f"books/{book.name}")
    kubectl(
        kind,
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "s3-credentials",
        f"--from-literal=AWS_ACCESS_KEY_ID={server.user}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={server.password}",
    )
    doc = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "s3"},
        "spec": {
            "app": {"builtin": "wordcount"},
            "input": {"paths": [f"s3://{bucket}/books/*.txt"], "splitSize": "512Ki"},
            "output": {"path": f"s3://{bucket}/out"},
            "storage": {
                "endpoint": server.endpoint,
                "region": REGION,
                "credentialsSecret": "s3-credentials",
            },
            "reduceTasks": 3,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 2},
        },
    }
    name = apply(kind, namespace, doc)
    done = wait_phase(kind, namespace, name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    lines = s3server.committed_lines(client, bucket, "out/")
    local = {**doc, "spec": {**doc["spec"], "input": {"paths": [str(BOOKS / "*.txt")]}}}
    local["spec"].pop("storage")
    assert sorted(lines) == oracle_of(tmp_path, local)
    pods = get_json(kind, "-n", namespace, "get", "pods")["items"]
    assert pods and all(p["spec"]["securityContext"].get("runAsNonRoot") for p in pods), [
        p["spec"]["securityContext"] for p in pods
    ]
