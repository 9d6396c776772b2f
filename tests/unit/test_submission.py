"""What ``kubemr submit`` sends and reads back (kubemr_client.submission), and how the
operator sees a pod whose code bundle did not install (kubemr_operator.observation)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from kubemr import bundles
from kubemr_client import submission
from kubemr_operator import lifecycle, manifests, observation


def test_the_bundle_config_map_is_immutable_content_named_and_carries_the_bundle(
    tmp_path: Path,
) -> None:
    app = tmp_path / "wc.py"
    app.write_text("class WordCount: ...\n")
    bundle = bundles.build(app, [], [])
    cm = submission.bundle_config_map("wc", "batch", bundle)
    assert cm["metadata"]["name"] == f"wc-app-{bundle.sha256[:10]}"
    assert cm["immutable"] is True
    assert base64.b64decode(cm["binaryData"]["bundle.zip"]) == bundle.data
    assert cm["metadata"]["labels"][manifests.LABEL_JOB] == "wc"
    assert submission.owner_reference("wc", "u1") == {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "name": "wc",
        "uid": "u1",
    }


def test_requirement_files_give_requirements_and_refuse_pip_options(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# pinned\ninflection==0.5.1  # words\n\nmsgpack\n")
    assert submission.read_requirements(path) == ["inflection==0.5.1", "msgpack"]
    assert submission.merged_requirements(["msgpack"], ["inflection", "msgpack"]) == [
        "msgpack",
        "inflection",
    ]
    path.write_text("--extra-index-url http://mirror\n")
    with pytest.raises(bundles.BundleError, match=r"requirements.txt:1: .*pip options"):
        submission.read_requirements(path)


def test_the_outcome_is_the_exit_code() -> None:
    assert not submission.finished({"phase": "Running"})
    assert submission.finished({"phase": "Failed"})
    assert submission.exit_code({"phase": "Succeeded"}) == 0
    assert submission.exit_code({"phase": "Failed"}) == submission.EXIT_FAILED
    assert submission.counts({"mapsDone": 3, "mapsTotal": 9}) == (3, 9, 0, None)


def pod(role: str, index: int, attempt: int) -> dict[str, Any]:
    labels = {
        manifests.LABEL_ROLE: role,
        manifests.LABEL_INDEX: str(index),
        manifests.LABEL_ATTEMPT: str(attempt),
    }
    return {"metadata": {"name": f"{role}-{index}-{attempt}", "labels": labels}}


def test_logs_read_the_newest_attempt_of_the_slot() -> None:
    pods = [pod("mapper", 3, 0), pod("mapper", 3, 2), pod("mapper", 1, 5), pod("master", 0, 0)]
    chosen = submission.pick_pod(pods, "mapper", 3)
    assert chosen is not None and chosen["metadata"]["name"] == "mapper-3-2"
    assert submission.pick_pod(pods, "reducer", 0) is None


def test_status_lines_show_the_outcome_and_conditions() -> None:
    lines = submission.describe(
        {
            "metadata": {"name": "wc", "namespace": "batch"},
            "spec": {"output": {"path": "/out"}, "app": {"bundle": {"configMap": "wc-app-1"}}},
            "status": {
                "phase": "Failed",
                "reason": "AppInstallFailed",
                "message": "pod wc-master could not install",
                "conditions": [{"type": "AppInstalled", "status": "False", "reason": "R"}],
            },
        }
    )
    assert lines[0] == "batch/wc: Failed (AppInstallFailed)"
    assert "  code bundle: wc-app-1 (sha256 None)" in lines
    assert "  AppInstalled=False R" in lines


def test_a_failed_install_container_marks_the_pod() -> None:
    raw = {
        "metadata": {
            "name": "wc-master",
            "labels": {manifests.LABEL_ROLE: "master"},
            "creationTimestamp": "2026-11-21T12:00:00Z",
        },
        "status": {
            "phase": "Failed",
            "initContainerStatuses": [
                {
                    "name": manifests.INSTALL_CONTAINER,
                    "state": {"terminated": {"exitCode": 2, "message": "kubemr: pip failed"}},
                }
            ],
            "containerStatuses": [{"name": "master", "state": {"waiting": {}}}],
        },
    }
    view = observation.pod_view(raw)
    assert view is not None and view.install_failed
    assert view.reason == lifecycle.APP_INSTALL_FAILED and view.message == "kubemr: pip failed"
    raw["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] = 0
    ok = observation.pod_view(raw)
    assert ok is not None and not ok.install_failed
