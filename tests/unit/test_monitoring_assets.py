"""The shipped dashboards and alert rules: generated into the Helm chart, consistent with
the chart's templates and with the runtime's metric catalogue."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from kubemr import metriccatalog
from kubemr_operator import manifests
from kubemr_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubemr"
RULES = CHART / "files" / "alerts.rules.yaml"
DASHBOARDS = CHART / "dashboards"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kubemr_monitoring_generate", ROOT / "charts" / "monitoring" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_committed_assets_are_what_the_generator_writes() -> None:
    module = generator()
    generated = module.assets()
    stale = [
        str(path.relative_to(ROOT))
        for path, text in generated.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `make monitoring`: {stale}"
    strays = [str(p.relative_to(ROOT)) for p in module.strays(generated)]
    assert not strays, f"not generated, but the chart would ship them: {strays}"


def test_the_generator_writes_inside_the_chart_what_its_templates_read() -> None:
    written = {p.relative_to(CHART).as_posix() for p in generator().assets() if CHART in p.parents}
    assert written == {
        "files/alerts.rules.yaml",
        "dashboards/kubemr-job.json",
        "dashboards/kubemr-shuffle.json",
        "dashboards/kubemr-workers.json",
    }
    templates = CHART / "templates"
    assert '.Files.Get "files/alerts.rules.yaml"' in (templates / "prometheusrule.yaml").read_text()
    assert '.Files.Glob "dashboards/*.json"' in (templates / "dashboards.yaml").read_text()
    ignored = (CHART / ".helmignore").read_text().split()
    assert not any(p in ignored for p in ("files", "files/", "dashboards", "dashboards/", "*.json"))


def referenced(expr: str) -> set[str]:
    names = set(re.findall(r"\b(kubemr_\w+|container_\w+)\b", expr))
    names.discard("kubemr_job")
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_query_uses_catalogued_metrics() -> None:
    known = set(metriccatalog.BY_NAME)
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert len(boards) == 3
    for path in boards:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                for name in referenced(target["expr"]):
                    assert name in known or name.startswith("container_"), (path.name, name)
    rules = yaml.safe_load(RULES.read_text())
    for rule in rules["groups"][0]["rules"]:
        assert referenced(rule["expr"]) <= known, rule["alert"]


def test_the_rules_file_is_a_rules_file_with_the_four_alerts() -> None:
    rules = yaml.safe_load(RULES.read_text())
    assert set(rules) == {"groups"}  # the chart uses it whole as the PrometheusRule's spec
    alerts = {r["alert"] for r in rules["groups"][0]["rules"]}
    assert alerts == {
        "KubemrJobStuck",
        "KubemrTaskFailuresRepeated",
        "KubemrReducerBufferSaturated",
        "KubemrHeartbeatsLost",
    }


def _helm() -> str | None:
    for candidate in (os.environ.get("HELM"), str(ROOT / ".cluster" / "bin" / "helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("helm")


def _render(*values: str) -> list[dict[str, Any]]:
    helm = _helm()
    if helm is None:
        pytest.skip("no helm binary ($HELM, .cluster/bin/helm or PATH)")
    args = [helm, "template", "t", str(CHART), "-n", "obs"]
    for value in values:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_the_chart_renders_the_rules_the_dashboards_and_the_pod_monitor() -> None:
    docs = _render(
        "prometheusRule.enabled=true", "metrics.podMonitor.enabled=true", "dashboards.enabled=true"
    )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    maps = {
        key: value
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, value in d["data"].items()
    }
    assert set(maps) == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, text in maps.items():
        assert json.loads(text) == json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "monitoring"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    pod_labels = manifests.labels("wc", Settings(image="kubemr:1"), "mapper", 0)
    assert selector.items() <= pod_labels.items()  # it selects the operator's job pods
