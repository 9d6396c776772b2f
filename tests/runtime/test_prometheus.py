"""A real Prometheus scrapes a running ``kubemr run --metrics`` job.

Checks what a dashboard or an alert would see: every query of every panel of the shipped
Grafana dashboards (``charts/kubemr/dashboards``) returns data over the job's run, every
alert rule of ``charts/kubemr/files/alerts.rules.yaml`` (the Helm chart's PrometheusRule)
is loaded and evaluates without error, and ``promtool check rules`` accepts the rules.
Needs Debian's ``prometheus`` package (``make prometheus`` installs it; ``make test`` does
so first).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from testjobs import APPS, ROOT, word_input, write_manifest

pytestmark = pytest.mark.prometheus

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
CHART = ROOT / "charts" / "kubemr"
RULES = CHART / "files" / "alerts.rules.yaml"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
READY_DEADLINE = 30.0
"""Seconds Prometheus may take to become ready."""
JOB_DEADLINE = 120.0
"""Seconds the slowed job may take."""
RULES_DEADLINE = 30.0
"""Seconds until every rule has been evaluated after the job."""
RATE_WINDOW = "10s"
"""What the dashboards' ``$__rate_interval`` stands for here (scrapes every second)."""


def _need(tool: Path) -> None:
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run `make prometheus` (Debian's prometheus package)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_promtool_accepts_the_alert_rules() -> None:
    _need(PROMTOOL)
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


class Targets:
    """A Prometheus file_sd target list, rewritten whenever a process announces its URL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.urls: dict[str, str] = {}
        self._write()

    def add(self, name: str, url: str) -> None:
        self.urls[name] = url
        self._write()

    def _write(self) -> None:
        groups = [
            {"targets": [urllib.parse.urlsplit(url).netloc], "labels": {"process": name}}
            for name, url in sorted(self.urls.items())
        ]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups), encoding="utf-8")
        tmp.replace(self.path)


def _start_prometheus(tmp_path: Path, targets: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "kubemr",
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = _free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            text = (tmp_path / "prometheus.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"Prometheus did not become ready:\n{text}")
        time.sleep(0.1)


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel target."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def _has_data(result: dict[str, Any]) -> bool:
    return any(
        math.isfinite(float(value))
        for series in result["data"]["result"]
        for _, value in series.get("values", [series.get("value", [0, "NaN"])])
    )


def test_dashboards_and_alerts_see_a_running_job(tmp_path: Path) -> None:
    _need(PROMETHEUS)
    assert len(DASHBOARDS) == 3, DASHBOARDS
    name = "scraped"
    paths = word_input(tmp_path, files=4, lines=30)
    doc = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": {
            "app": {
                "module": f"{APPS / 'slow.py'}:Slow",
                "args": {"map_delay": "0.08", "reduce_delay": "0.08"},
            },
            "input": {"paths": paths, "splitSize": "1Ki"},
            "output": {"path": str(tmp_path / "out")},
            "reduceTasks": 2,
            "mapper": {"replicas": 2},
            "reducer": {"replicas": 2},
            "shuffle": {"mode": "streaming"},
        },
    }
    manifest = write_manifest(tmp_path, doc)
    targets = Targets(tmp_path / "targets.json")
    prometheus, base = _start_prometheus(tmp_path, targets.path)
    job: subprocess.Popen[str] | None = None
    try:
        started = time.time()
        job = subprocess.Popen(
            [sys.executable, "-m", "kubemr", "run", str(manifest), "--quiet", "--metrics"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        lines: list[str] = []

        def follow() -> None:
            assert job is not None and job.stderr is not None
            for line in job.stderr:
                lines.append(line)
                if line.startswith("metrics: "):
                    _, process, url = line.split()
                    targets.add(process, url)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            job.wait(timeout=JOB_DEADLINE)
        except subprocess.TimeoutExpired:
            job.kill()
            pytest.fail(f"the job did not finish in {JOB_DEADLINE:.0f}s:\n{''.join(lines)}")
        reader.join(timeout=10)
        assert job.stdout is not None
        stdout = job.stdout.read()
        assert job.returncode == 0, stdout + "".join(lines)
        ended = time.time()
        assert set(targets.urls) == {"master", "mapper-0", "mapper-1", "reducer-0", "reducer-1"}

        scrapes = _api(
            base,
            "/api/v1/query",
            query=f'count_over_time(up{{job="kubemr"}}[{int(ended - started) + 5}s])',
        )
        counts = {s["metric"]["process"]: float(s["value"][1]) for s in scrapes["data"]["result"]}
        assert set(counts) == set(targets.urls) and min(counts.values()) >= 3, counts

        missing = []
        for board, title, expr in _panel_queries():
            query = (
                expr.replace("$__rate_interval", RATE_WINDOW)
                .replace("$namespace", ".*")
                .replace("$kubemr_job", name)
            )
            result = _api(
                base,
                "/api/v1/query_range",
                query=query,
                start=f"{started:.3f}",
                end=f"{ended + 2:.3f}",
                step="1",
            )
            assert result["status"] == "success", (board, title, result)
            if not _has_data(result):
                missing.append(f"{board} / {title}: {query}")
        assert not missing, "panels without data:\n" + "\n".join(missing)

        deadline = time.monotonic() + RULES_DEADLINE
        while True:
            groups = _api(base, "/api/v1/rules")["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001")]
            if len(rules) == 4 and len(evaluated) == 4:
                break
            assert time.monotonic() < deadline, f"rules not all evaluated: {rules}"
            time.sleep(0.2)
        assert {r["name"] for r in rules} == {
            "KubemrJobStuck",
            "KubemrTaskFailuresRepeated",
            "KubemrReducerBufferSaturated",
            "KubemrHeartbeatsLost",
        }
        for rule in rules:
            assert rule["health"] == "ok", rule
            assert _api(base, "/api/v1/query", query=rule["query"])["status"] == "success"

        summary = json.loads((tmp_path / "out" / "_summary.json").read_text(encoding="utf-8"))
        final = summary["metrics"]
        assert set(final) == set(targets.urls)
        assert final["master"]["kubemr_job_progress_ratio"][0]["value"] == 1.0
        waits = [
            row["count"]
            for process in ("reducer-0", "reducer-1")
            for row in final[process].get("kubemr_fetch_buffer_lock_wait_seconds", [])
        ]
        assert sum(waits) > 0, final["reducer-0"]
    finally:
        if job is not None:
            if job.poll() is None:
                job.kill()
                job.wait()
            for stream in (job.stdout, job.stderr):
                if stream is not None:
                    stream.close()
        prometheus.terminate()
        try:
            prometheus.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
