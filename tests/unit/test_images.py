"""The container image, the chart and the operator agree on entrypoints, user and CRD."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from kubemr_operator import manifests
from kubemr_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"
CHART = ROOT / "charts" / "kubemr"


def instruction(name: str) -> list[str]:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith(name + " ")]
    return [line.removeprefix(name + " ") for line in lines]


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_what_the_operator_and_the_chart_run() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    assert entrypoint == list(Settings().command) == ["kubemr"]
    assert entrypoint[0] in scripts
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["operator"]["command"][0] in scripts  # kubemr-operator
    assert scripts["kubemr-operator"] == "kubemr_operator.__main__:main"


def test_job_pods_call_subcommands_the_cli_has() -> None:
    from kubemr import cli  # noqa: PLC0415

    help_text = cli._parser({}).format_help()
    ref = manifests.JobRef("wc", "ns", "uid")
    from kubemr import spec  # noqa: PLC0415

    job = spec.parse_job(
        {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "metadata": {"name": "wc"},
            "spec": {
                "app": {"builtin": "grep"},
                "input": {"paths": ["a"]},
                "output": {"path": "o"},
            },
        }
    )
    for role in ("master", "mapper", "reducer"):
        args = manifests.pod(ref, job, role, 0, 0, Settings())["spec"]["containers"][0]["args"]
        assert args[0] in help_text


def test_the_image_and_every_pod_run_as_the_same_non_root_user() -> None:
    user = instruction("USER")[-1]
    assert user == f"{Settings().run_as_user}:{Settings().run_as_user}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == Settings().run_as_user


def test_the_chart_ships_the_same_crd() -> None:
    assert (CHART / "crds" / "mapreducejob.yaml").read_text() == (
        ROOT / "crds" / "mapreducejob.yaml"
    ).read_text(), "copy crds/mapreducejob.yaml to charts/kubemr/crds/ (make crd does)"
