"""Generate kubemr's monitoring assets from one description: dashboards, alerts, docs.

Run it with ``make monitoring``; ``make monitoring-check`` (and ``tests/unit/
test_monitoring_assets.py``) fail when a committed file differs from what this writes.

Writes, inside the Helm chart (``charts/kubemr``; Helm reads only files in the chart):

- ``charts/kubemr/dashboards/kubemr-{job,shuffle,workers}.json``: Grafana dashboards (the
  chart's ``templates/dashboards.yaml`` ships each as a ConfigMap for the Grafana sidecar;
  without Helm, import the JSON into Grafana).
- ``charts/kubemr/files/alerts.rules.yaml``: the alert rules as a plain Prometheus rules
  file (``rule_files``, ``promtool check rules``); the chart's
  ``templates/prometheusrule.yaml`` uses it as its PrometheusRule's ``spec``.
- the metric table of ``docs/metrics.md`` (between its ``catalog`` markers), from
  :data:`kubemr.metriccatalog.CATALOG`.

The PodMonitor for job pods is the chart's (``templates/monitors.yaml``,
``metrics.podMonitor.enabled``).

Every query filters on the dashboard variables ``$namespace`` and ``$kubemr_job`` (All:
``.*``, which also matches series without the label, as on ``kubemr run``), and rates use
Grafana's ``$__rate_interval``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubemr import metriccatalog

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubemr"
DASHBOARDS = CHART / "dashboards"
RULES = CHART / "files" / "alerts.rules.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
BEGIN, END = "<!-- catalog: begin (make monitoring) -->", "<!-- catalog: end -->"

S = 'namespace=~"$namespace", kubemr_job=~"$kubemr_job"'
"""The label filter of every dashboard query."""
R = "$__rate_interval"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    targets: tuple[Target, ...]
    description: str = ""


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def t(expr: str, legend: str) -> Target:
    return Target(expr, legend)


def p95(metric: str, by: str, where: str = "") -> str:
    selector = f"{S}, {where}" if where else S
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{R}])))"


def rate_sum(metric: str, by: str, where: str = "") -> str:
    selector = f"{S}, {where}" if where else S
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{R}]))"


JOB = Dashboard(
    "kubemr-job",
    "kubemr / job overview",
    "Progress, phase timings and throughput of MapReduce jobs.",
    [
        Panel(
            "Progress",
            "percentunit",
            (t(f"max by (kubemr_job) (kubemr_job_progress_ratio{{{S}}})", "{{kubemr_job}}"),),
            "Completed tasks over all tasks.",
        ),
        Panel(
            "Tasks completed",
            "short",
            (
                t(
                    f"sum by (kubemr_job, phase) (kubemr_job_tasks_completed{{{S}}})",
                    "{{kubemr_job}} {{phase}} done",
                ),
                t(
                    f"sum by (kubemr_job, phase) (kubemr_job_tasks{{{S}}})",
                    "{{kubemr_job}} {{phase}} total",
                ),
            ),
        ),
        Panel(
            "Seconds since a task last completed",
            "s",
            (
                t(
                    f"time() - max by (kubemr_job) "
                    f"(kubemr_job_last_progress_timestamp_seconds{{{S}}})",
                    "{{kubemr_job}}",
                ),
            ),
            "A job that stops progressing shows here first (alert: KubemrJobStuck).",
        ),
        Panel(
            "Phase duration, p95",
            "s",
            (t(p95("kubemr_phase_duration_seconds", "phase"), "{{phase}}"),),
            "Map, spill, map_merge, shuffle_fetch (one run), reduce_merge, reduce, commit.",
        ),
        Panel(
            "Time spent per phase (seconds per second, all processes)",
            "s",
            (t(rate_sum("kubemr_phase_duration_seconds_sum", "phase"), "{{phase}}"),),
        ),
        Panel(
            "Records per second into and out of each stage",
            "short",
            (
                t(rate_sum("kubemr_stage_input_records_total", "phase"), "{{phase}} in"),
                t(rate_sum("kubemr_stage_output_records_total", "phase"), "{{phase}} out"),
            ),
        ),
        Panel(
            "Bytes per second into and out of each stage",
            "Bps",
            (
                t(rate_sum("kubemr_stage_input_bytes_total", "phase"), "{{phase}} in"),
                t(rate_sum("kubemr_stage_output_bytes_total", "phase"), "{{phase}} out"),
            ),
        ),
        Panel(
            "Attempts by outcome",
            "short",
            (
                t(
                    f"sum by (phase, outcome) (kubemr_task_attempts{{{S}}})",
                    "{{phase}} {{outcome}}",
                ),
            ),
        ),
    ],
)

SHUFFLE = Dashboard(
    "kubemr-shuffle",
    "kubemr / shuffle",
    "Buffer occupancy, lock and buffer waits, fetch latency and shuffle bytes.",
    [
        Panel(
            "Map sort buffer",
            "bytes",
            (
                t(f"max by (instance) (kubemr_map_sort_buffer_bytes{{{S}}})", "{{instance}}"),
                t(f"max(kubemr_map_sort_buffer_capacity_bytes{{{S}}})", "capacity"),
            ),
            "Estimated memory of each mapper's sort buffer; it spills at capacity.",
        ),
        Panel(
            "Map sort buffer records",
            "short",
            (t(f"max by (instance) (kubemr_map_sort_buffer_records{{{S}}})", "{{instance}}"),),
        ),
        Panel(
            "Reducer fetch buffer",
            "bytes",
            (
                t(f"max by (instance) (kubemr_fetch_buffer_bytes{{{S}}})", "{{instance}}"),
                t(f"max(kubemr_fetch_buffer_capacity_bytes{{{S}}})", "capacity"),
            ),
            "In-memory fetched runs; a map output that does not fit streams to disk.",
        ),
        Panel(
            "Fetch sources (per-source streams)",
            "short",
            (
                t(f"sum by (instance) (kubemr_fetch_sources_active{{{S}}})", "{{instance}} active"),
                t(
                    f"sum by (instance) (kubemr_fetch_sources_waiting{{{S}}})",
                    "{{instance}} waiting",
                ),
                t(f"max(kubemr_fetch_sources_capacity{{{S}}})", "slots"),
            ),
        ),
        Panel(
            "Bytes in flight (unfinished fetches)",
            "bytes",
            (t(f"sum by (instance) (kubemr_fetch_inflight_bytes{{{S}}})", "{{instance}}"),),
        ),
        Panel(
            "Fetch buffer lock: wait and hold (seconds per second)",
            "s",
            (
                t(
                    rate_sum("kubemr_fetch_buffer_lock_wait_seconds_sum", "instance"),
                    "{{instance}} wait",
                ),
                t(
                    rate_sum("kubemr_fetch_buffer_lock_hold_seconds_sum", "instance"),
                    "{{instance}} hold",
                ),
            ),
            "Time spent waiting for (and holding) the reducer's fetch buffer lock; a wait "
            "near the number of fetch streams means the reducer is serialised.",
        ),
        Panel(
            "Blocked on full or empty buffers (seconds per second)",
            "s",
            (
                t(
                    rate_sum("kubemr_map_sort_buffer_full_wait_seconds_sum", "instance"),
                    "{{instance}} map buffer full",
                ),
                t(
                    rate_sum("kubemr_fetch_slot_wait_seconds_sum", "instance"),
                    "{{instance}} waiting for a fetch slot",
                ),
                t(
                    rate_sum("kubemr_map_output_wait_seconds_sum", "instance"),
                    "{{instance}} waiting for map outputs",
                ),
            ),
        ),
        Panel(
            "Fetch latency, p95",
            "s",
            (
                t(
                    p95("kubemr_phase_duration_seconds", "phase", 'phase="shuffle_fetch"'),
                    "one run",
                ),
                t(
                    p95(
                        "kubemr_grpc_client_handling_seconds",
                        "method",
                        'method="FetchPartition"',
                    ),
                    "FetchPartition call",
                ),
            ),
        ),
        Panel(
            "Shuffle bytes per second",
            "Bps",
            (
                t(
                    rate_sum("kubemr_stage_input_bytes_total", "instance", 'phase="shuffle_fetch"'),
                    "{{instance}} fetched",
                ),
                t(
                    rate_sum(
                        "kubemr_stage_output_bytes_total", "instance", 'phase="shuffle_serve"'
                    ),
                    "{{instance}} served",
                ),
            ),
        ),
        Panel(
            "Fetched runs streamed to disk (buffer full), per second",
            "short",
            (t(rate_sum("kubemr_fetched_runs_spilled_total", "instance"), "{{instance}}"),),
        ),
    ],
)

CPU_CADVISOR = (
    f'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace=~"$namespace", '
    f'pod=~"$kubemr_job-.*", container!="", container!="POD"}}[{R}]))'
)
MEM_CADVISOR = (
    'sum by (pod) (container_memory_working_set_bytes{namespace=~"$namespace", '
    'pod=~"$kubemr_job-.*", container!="", container!="POD"})'
)

WORKERS = Dashboard(
    "kubemr-workers",
    "kubemr / workers",
    "Workers, attempts, failures, stragglers, heartbeats and per-pod resources.",
    [
        Panel(
            "Live workers",
            "short",
            (t(f"sum by (phase) (kubemr_job_workers{{{S}}})", "{{phase}}"),),
            "map: mappers, reduce: reducers.",
        ),
        Panel(
            "Failed attempts",
            "short",
            (t(f'sum by (phase) (kubemr_task_attempts{{{S}, outcome="failed"}})', "{{phase}}"),),
        ),
        Panel(
            "Attempt duration on workers, p95",
            "s",
            (t(p95("kubemr_task_duration_seconds", "phase, outcome"), "{{phase}} {{outcome}}"),),
        ),
        Panel(
            "Stragglers: backup attempts launched and won",
            "short",
            (
                t(
                    f"sum by (phase, rule) (kubemr_speculative_attempts_launched_total{{{S}}})",
                    "{{phase}} launched ({{rule}})",
                ),
                t(
                    f'sum by (phase) (kubemr_speculative_attempts{{{S}, outcome="succeeded"}})',
                    "{{phase}} won",
                ),
            ),
            "rate: the straggler's progress rate was far below its peers'; elapsed: it had "
            "reported no progress. A backup that won committed before its original.",
        ),
        Panel(
            "Master restarts",
            "short",
            (t(f"max by (kubemr_job) (kubemr_master_restarts{{{S}}})", "{{kubemr_job}}"),),
            "Masters of the job that ran before the current one; each resumed the job "
            "from its journal (completed map outputs and committed reduces are kept).",
        ),
        Panel(
            "Heartbeats: longest silence and timeout",
            "s",
            (
                t(f"max by (phase) (kubemr_heartbeat_max_lag_seconds{{{S}}})", "{{phase}}"),
                t(f"max(kubemr_heartbeat_timeout_seconds{{{S}}})", "timeout"),
            ),
        ),
        Panel(
            "Heartbeat interval at the master, p95",
            "s",
            (t(p95("kubemr_heartbeat_interval_seconds", "phase"), "{{phase}}"),),
        ),
        Panel(
            "Event loop lag, p95",
            "s",
            (t(p95("kubemr_event_loop_lag_seconds", "role"), "{{role}}"),),
            "How late each process's event loop runs (heartbeats and fetches wait this long).",
        ),
        Panel(
            "gRPC server latency, p95",
            "s",
            (t(p95("kubemr_grpc_server_handling_seconds", "method"), "{{method}}"),),
            "RequestTask and AwaitMapOutputs are long polls: they wait up to a second.",
        ),
        Panel(
            "CPU per pod",
            "short",
            (
                t(
                    f"{CPU_CADVISOR} or sum by (instance, role) "
                    f"(rate(kubemr_process_cpu_seconds_total{{{S}}}[{R}]))",
                    "{{pod}}{{instance}} {{role}}",
                ),
            ),
            "cAdvisor's container CPU where present, else the process's own figure.",
        ),
        Panel(
            "Memory per pod",
            "bytes",
            (
                t(
                    f"{MEM_CADVISOR} or sum by (instance, role) "
                    f"(kubemr_process_resident_memory_bytes{{{S}}})",
                    "{{pod}}{{instance}} {{role}}",
                ),
            ),
            "cAdvisor's working set where present, else the process's resident memory.",
        ),
    ],
)

ALL_DASHBOARDS = (JOB, SHUFFLE, WORKERS)

ALERTS: list[dict[str, Any]] = [
    {
        "alert": "KubemrJobStuck",
        "expr": (
            "max by (namespace, kubemr_job) (kubemr_job_running) == 1\n"
            "and on (namespace, kubemr_job)\n"
            "time() - max by (namespace, kubemr_job) "
            "(kubemr_job_last_progress_timestamp_seconds) > 900"
        ),
        "for": "5m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "kubemr job {{ $labels.kubemr_job }} has made no progress for 20 minutes",
            "description": "No map or reduce task completed in 15 minutes (and 5 more).",
        },
    },
    {
        "alert": "KubemrTaskFailuresRepeated",
        "expr": (
            "sum by (namespace, kubemr_job, phase) "
            '(delta(kubemr_task_attempts{outcome="failed"}[15m])) >= 3'
        ),
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "kubemr job {{ $labels.kubemr_job }}: {{ $value }} failed "
            "{{ $labels.phase }} attempts in 15 minutes",
            "description": "Tasks keep failing; at maxTaskAttempts failures the job fails.",
        },
    },
    {
        "alert": "KubemrReducerBufferSaturated",
        "expr": (
            "max by (namespace, kubemr_job, instance) "
            "(kubemr_fetch_buffer_bytes / kubemr_fetch_buffer_capacity_bytes) > 0.9"
        ),
        "for": "10m",
        "labels": {"severity": "info"},
        "annotations": {
            "summary": "kubemr reducer {{ $labels.instance }}: fetch buffer over 90 % for "
            "10 minutes",
            "description": "Further map outputs stream to local disk; consider a larger "
            "spec.shuffle.bufferSize.",
        },
    },
    {
        "alert": "KubemrHeartbeatsLost",
        "expr": (
            "sum by (namespace, kubemr_job) (increase(kubemr_workers_lost_total[10m])) > 0\n"
            "or\n"
            "max by (namespace, kubemr_job) (kubemr_heartbeat_max_lag_seconds)\n"
            "> on (namespace, kubemr_job)\n"
            "max by (namespace, kubemr_job) (kubemr_heartbeat_timeout_seconds) / 2"
        ),
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "kubemr job {{ $labels.kubemr_job }}: workers lost or heartbeats late",
            "description": "A worker was declared dead in the last 10 minutes, or one has "
            "been silent for half the heartbeat timeout.",
        },
    },
]

RULE_GROUPS = {"groups": [{"name": "kubemr", "rules": ALERTS}]}


def panel_json(panel: Panel, index: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": target.expr,
                "legendFormat": target.legend,
            }
            for i, target in enumerate(panel.targets)
        ],
    }


def variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def dashboard_json(board: Dashboard) -> dict[str, Any]:
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["kubemr"],
        "editable": True,
        "schemaVersion": 37,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                },
                variable("namespace", "label_values(kubemr_job_running, namespace)"),
                variable(
                    "kubemr_job",
                    'label_values(kubemr_job_running{namespace=~"$namespace"}, kubemr_job)',
                ),
            ]
        },
        "panels": [panel_json(panel, i) for i, panel in enumerate(board.panels)],
    }


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def dump_yaml(*documents: Any) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in documents)


def assets() -> dict[Path, str]:
    """Every generated file and its content."""
    out: dict[Path, str] = {}
    for board in ALL_DASHBOARDS:
        out[DASHBOARDS / f"{board.uid}.json"] = dump_json(dashboard_json(board))
    out[RULES] = dump_yaml(RULE_GROUPS)
    doc = METRICS_DOC.read_text(encoding="utf-8") if METRICS_DOC.exists() else ""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        out[METRICS_DOC] = f"{head}{BEGIN}\n{metriccatalog.catalog_table()}{END}{tail}"
    return out


def strays(generated: dict[Path, str]) -> list[Path]:
    """Files in the generated folders that the generator does not write (a renamed or
    removed dashboard): the chart would still ship them."""
    return sorted(set(DASHBOARDS.glob("*.json")) - set(generated))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file would change")
    args = parser.parse_args(argv)
    generated = assets()
    stale = []
    for path, text in generated.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    extra = strays(generated)
    if args.check and (stale or extra):
        if stale:
            print(f"out of date (run `make monitoring`): {', '.join(map(str, stale))}")
        if extra:
            names = ", ".join(str(p.relative_to(ROOT)) for p in extra)
            print(f"not generated (run `make monitoring` to remove): {names}")
        return 1
    for path in extra:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
