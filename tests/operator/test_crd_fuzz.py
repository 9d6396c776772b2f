"""Hypothesis-generated manifests against the real API server (the CRD, server-side dry
run) and the spec model: they accept and reject the same ones, every rejection by the
model names a field (each problem starts with its path), and so does every rejection
by the API server (its message names ``spec``, ``metadata``, ``apiVersion`` or ``kind``
fields, or the object is not a JSON object at all)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubemr import spec
from localkube import apiclient

from manifestfuzz import FIELD_PATH, manifests

pytestmark = pytest.mark.cluster

SERVER_FIELD = re.compile(r"\b(spec|metadata|apiVersion|kind)\b")
"""A field the API server's rejection names."""

DISAGREEMENTS: list[str] = []


@pytest.fixture(scope="module")
def server(kube: apiclient.ApiClient, crd: str) -> apiclient.ApiClient:
    del crd
    return kube


def test_model_and_crd_agree_on_generated_manifests(server: apiclient.ApiClient) -> None:
    path = "/apis/kubemr.io/v1alpha1/namespaces/default/mapreducejobs"

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(manifests())
    def agree(doc: dict[str, Any]) -> None:
        try:
            server.request("POST", path, doc, params={"dryRun": "All", "fieldValidation": "Strict"})
            server_says = "accepts"
        except apiclient.ApiError as error:
            assert error.status in (400, 422), error
            assert SERVER_FIELD.search(error.message), error.message
            server_says = f"rejects ({error.message[:300]})"
        try:
            spec.parse_job(doc)
            model_says = "accepts"
        except spec.SpecError as error:
            unnamed = [p for p in error.problems if not FIELD_PATH.match(p)]
            assert error.problems and not unnamed, unnamed or "no problem listed"
            model_says = f"rejects ({'; '.join(error.problems)})"
        assert server_says.split()[0] == model_says.split()[0], (
            f"{json.dumps(doc)}\nserver {server_says}\nmodel {model_says}"
        )

    agree()
