"""The shipped dashboards, alert rules and monitor manifests: generated, consistent with
each other and with the runtime's metric catalogue."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml
from kubemr import metrics

ROOT = Path(__file__).resolve().parents[2]


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
    stale = [
        str(path.relative_to(ROOT))
        for path, text in generator().assets().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `make monitoring`: {stale}"


def referenced(expr: str) -> set[str]:
    names = set(re.findall(r"\b(kubemr_\w+|container_\w+)\b", expr))
    names.discard("kubemr_job")
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_query_uses_catalogued_metrics() -> None:
    known = set(metrics.BY_NAME)
    for path in sorted((ROOT / "charts" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                for name in referenced(target["expr"]):
                    assert name in known or name.startswith("container_"), (path.name, name)
    rules = yaml.safe_load((ROOT / "charts" / "monitoring" / "alerts.rules.yaml").read_text())
    for rule in rules["groups"][0]["rules"]:
        assert referenced(rule["expr"]) <= known, rule["alert"]


def test_the_prometheus_rule_and_the_rules_file_hold_the_same_groups() -> None:
    plain = yaml.safe_load((ROOT / "charts" / "monitoring" / "alerts.rules.yaml").read_text())
    crd = yaml.safe_load((ROOT / "charts" / "monitoring" / "prometheusrule.yaml").read_text())
    assert crd["kind"] == "PrometheusRule"
    assert crd["spec"] == plain
    alerts = {r["alert"] for r in plain["groups"][0]["rules"]}
    assert alerts == {
        "KubemrJobStuck",
        "KubemrTaskFailuresRepeated",
        "KubemrReducerBufferSaturated",
        "KubemrHeartbeatsLost",
    }


def test_each_dashboard_ships_as_a_sidecar_config_map() -> None:
    docs = list(
        yaml.safe_load_all((ROOT / "charts" / "dashboards" / "configmaps.yaml").read_text())
    )
    boards = sorted((ROOT / "charts" / "dashboards").glob("*.json"))
    assert len(docs) == len(boards) == 3
    for doc, path in zip(docs, boards, strict=True):
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert doc["data"] == {path.name: path.read_text(encoding="utf-8")}


def test_the_pod_monitor_scrapes_the_pods_monitoring_port() -> None:
    monitor = yaml.safe_load((ROOT / "charts" / "monitoring" / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "monitoring"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/managed-by"] == (
        "kubemr-operator"
    )
