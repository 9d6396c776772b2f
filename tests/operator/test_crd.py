"""The CRD is generated from the runtime's spec model, and the API server and the model
accept and reject the same manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from kubemr import spec
from kubemr_operator import crd as crds
from localkube import apiclient

ROOT = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "apiVersion": "kubemr.io/v1alpha1",
    "kind": "MapReduceJob",
    "metadata": {"name": "wc"},
    "spec": {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["/data/*.txt"]},
        "output": {"path": "/out/wc"},
    },
}


def variant(name: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    doc = copy.deepcopy(VALID)
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return name, doc


CASES = [
    variant("minimal"),
    variant(
        "full",
        spec__reduceTasks=3,
        spec__combine=False,
        spec__partitioner="range",
        spec__shuffle={"mode": "barrier", "bufferSize": "8Mi", "chunkSize": 65536},
        spec__faultTolerance={
            "maxTaskAttempts": 2,
            "heartbeatTimeout": "1m30s",
            "speculative": False,
        },
        spec__mapper={"replicas": 4, "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
        spec__input={"paths": ["a", "b"], "splitSize": "1.5Mi"},
    ),
    variant("module", spec__app={"module": "apps/x.py:App", "args": {"k": "v"}}),
    variant("missing-input", spec__input=None),
    variant("negative-reduceTasks", spec__reduceTasks=-1),
    variant("both-builtin-and-module", spec__app={"builtin": "grep", "module": "m:A"}),
    variant("neither-builtin-nor-module", spec__app={"args": {}}),
    variant("bad-quantity", spec__input={"paths": ["a"], "splitSize": "12Qi"}),
    variant("bad-duration", spec__faultTolerance={"heartbeatTimeout": "ten"}),
    variant("unknown-field", spec__colour="blue"),
    variant("unknown-builtin", spec__app={"builtin": "pagerank"}),
    variant("bad-module", spec__app={"module": "no colon"}),
    variant("bad-mode", spec__shuffle={"mode": "sideways"}),
    variant("empty-paths", spec__input={"paths": []}),
    variant("too-many-attempts", spec__faultTolerance={"maxTaskAttempts": 1000}),
    variant("long-name", metadata__name="x" * 53),
    variant(
        "kubernetes-fields",
        spec__backoffLimit=2,
        spec__activeDeadlineSeconds=600,
        spec__ttlSecondsAfterFinished=0,
        spec__suspend=True,
        spec__cleanupPolicy="KeepAll",
        spec__pendingTimeout="2m",
        spec__serviceAccountName="runner",
        spec__nodeSelector={"disk": "ssd"},
        spec__tolerations=[{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        spec__master={"resources": {"limits": {"memory": "512Mi"}}},
        spec__volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": "books"}},
            {"name": "scratch", "hostPath": {"path": "/mnt/scratch"}},
        ],
        spec__volumeMounts=[
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "scratch", "mountPath": "/scratch", "subPath": "x"},
        ],
    ),
    variant("bad-cleanupPolicy", spec__cleanupPolicy="DeleteSome"),
    variant("negative-backoffLimit", spec__backoffLimit=-1),
    variant("volume-without-name", spec__volumes=[{"hostPath": {"path": "/x"}}]),
    variant("volume-without-source", spec__volumes=[{"name": "data"}]),
    variant(
        "duplicate-volumes",
        spec__volumes=[{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}],
    ),
    variant(
        "mount-of-unknown-volume",
        spec__volumes=[{"name": "d", "emptyDir": {}}],
        spec__volumeMounts=[{"name": "e", "mountPath": "/e"}],
    ),
    variant("mount-without-volumes", spec__volumeMounts=[{"name": "e", "mountPath": "/e"}]),
    variant(
        "relative-mountPath",
        spec__volumes=[{"name": "d", "emptyDir": {}}],
        spec__volumeMounts=[{"name": "d", "mountPath": "data"}],
    ),
    variant("map-only", spec__reduceTasks=0),
    variant("gzip-output", spec__output={"path": "/out", "compression": "gzip"}),
    variant("zstd-output", spec__output={"path": "/out", "compression": "zstd"}),
    variant("xz-output-unsupported", spec__output={"path": "/out", "compression": "xz"}),
    variant("jsonl-input", spec__input={"paths": ["a"], "format": "jsonl"}),
    variant("whole-file-input", spec__input={"paths": ["a"], "format": "whole-file"}),
    variant("bad-format", spec__input={"paths": ["a"], "format": "csv"}),
    variant("skip-records", spec__faultTolerance={"maxSkippedRecords": 10}),
    variant("negative-skip-records", spec__faultTolerance={"maxSkippedRecords": -1}),
    variant("string-for-integer", spec__reduceTasks="3"),
    variant("whole-float-for-integer", spec__reduceTasks=3.0),
    variant("string-for-boolean", spec__suspend="true"),
    ("null-is-absent", {**VALID, "spec": {**VALID["spec"], "backoffLimit": None}}),
    ("null-unknown-field", {**VALID, "spec": {**VALID["spec"], "colour": None}}),
    variant("bad-toleration-effect", spec__tolerations=[{"key": "k", "effect": "Sometimes"}]),
    variant(
        "s3-storage",
        spec__input={"paths": ["s3://books/in/*.txt"]},
        spec__output={"path": "s3://books/out/wc"},
        spec__storage={
            "endpoint": "http://minio.storage:9000",
            "region": "eu-west-1",
            "pathStyle": True,
            "credentialsSecret": "minio.credentials",
        },
    ),
    variant("s3-storage-empty", spec__storage={}),
    variant("s3-endpoint-without-scheme", spec__storage={"endpoint": "minio:9000"}),
    variant("s3-secret-not-a-name", spec__storage={"credentialsSecret": "Minio_Creds"}),
    variant("s3-credentials-in-the-cr", spec__storage={"accessKeyId": "AKIA..."}),
]


def test_committed_crd_matches_the_model() -> None:
    assert crds.CRD_FILE.read_text() == crds.render(), "run `make crd` and commit crds/"


def model_accepts(doc: dict[str, Any]) -> bool:
    try:
        spec.parse_job(doc)
    except spec.SpecError:
        return False
    return True


@pytest.mark.cluster
@pytest.mark.parametrize(("name", "doc"), CASES, ids=[c[0] for c in CASES])
def test_api_server_and_model_agree(
    crd: str, kube: apiclient.ApiClient, namespace: str, name: str, doc: dict[str, Any]
) -> None:
    path = f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs"
    try:
        kube.request("POST", path, doc, params={"dryRun": "All", "fieldValidation": "Strict"})
        server_accepts, message = True, ""
    except apiclient.ApiError as error:
        assert error.status in (400, 422), error
        server_accepts, message = False, error.message
    assert server_accepts == model_accepts(doc), f"{name}: server says {message or 'accepted'}"
