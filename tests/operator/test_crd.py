"""The CRD is generated from the runtime's spec model, and the API server and the model
accept and reject the same manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubemr import spec
from kubemr_operator import crd
from localkube import apiclient, deadlines

ROOT = Path(__file__).resolve().parents[2]
CRD_ESTABLISHED = deadlines.Deadline("crd_established", 30.0)

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
]


def test_committed_crd_matches_the_model() -> None:
    assert crd.CRD_FILE.read_text() == crd.render(), "run `make crd` and commit crds/"


def model_accepts(doc: dict[str, Any]) -> bool:
    try:
        spec.parse_job(doc)
    except spec.SpecError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(kube: apiclient.ApiClient) -> str:
    body = yaml.safe_load(crd.CRD_FILE.read_text())
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    name = body["metadata"]["name"]
    try:
        current = kube.get(f"{path}/{name}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.replace(f"{path}/{name}", body)
    except apiclient.ApiError as error:
        if not apiclient.is_not_found(error):
            raise
        kube.create(path, body)

    def established() -> bool | None:
        conditions = kube.get(f"{path}/{name}").get("status", {}).get("conditions", [])
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return True if ok else None

    deadlines.poll(CRD_ESTABLISHED, established, f"CRD {name} established")
    return name


@pytest.mark.cluster
@pytest.mark.parametrize(("name", "doc"), CASES, ids=[c[0] for c in CASES])
def test_api_server_and_model_agree(
    installed: str, kube: apiclient.ApiClient, namespace: str, name: str, doc: dict[str, Any]
) -> None:
    path = f"/apis/kubemr.io/v1alpha1/namespaces/{namespace}/mapreducejobs"
    try:
        kube.request("POST", path, doc, params={"dryRun": "All", "fieldValidation": "Strict"})
        server_accepts, message = True, ""
    except apiclient.ApiError as error:
        assert error.status in (400, 422), error
        server_accepts, message = False, error.message
    assert server_accepts == model_accepts(doc), f"{name}: server says {message or 'accepted'}"
