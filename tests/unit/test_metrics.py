"""The runtime's metrics: the catalogue, the registries built from it, and their docs."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

from kubemr import master, metriccatalog, metrics, monitoring, plan, spec
from kubemr.attempts import Attempt, Kind
from kubemr.outputdir import OutputDir
from prometheus_client.parser import text_string_to_metric_families

from testjobs import manifest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_LABELS = {"kubemr_job", "role", "phase", "outcome", "rule", "method"}


def view() -> metriccatalog.JobGauges:
    return metriccatalog.JobGauges(
        tasks={"map": 3, "reduce": 2},
        completed={"map": 3, "reduce": 1},
        running=True,
        failed=False,
        last_progress=1.0,
        workers={"map": 2, "reduce": 1},
        attempts={("map", "succeeded"): 3, ("reduce", "running"): 1},
        backups_launched={("map", "rate"): 1, ("reduce", "rate"): 0},
        backups={("map", "succeeded"): 1},
        max_lag={"map": 0.5, "reduce": 0.2},
        heartbeat_timeout=10.0,
        master_restarts=2,
    )


def exported(role: str) -> dict[str, set[str]]:
    """Family name (as in the catalogue) -> label names of its samples, for one process."""
    runtime = metrics.RuntimeMetrics(role, "wc")
    if role == "master":
        runtime.job_view = view
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(runtime.exposition().decode()):
        if family.name.endswith("_created"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = {label for s in family.samples for label in s.labels} - {"le"}
    return out


def test_every_exported_family_is_in_the_catalogue_with_bounded_labels() -> None:
    seen: set[str] = set()
    for role in ("master", "mapper", "reducer"):
        for name, labels in exported(role).items():
            assert name in metriccatalog.BY_NAME, f"{role} exports {name}, not in CATALOG"
            definition = metriccatalog.BY_NAME[name]
            if labels:  # a family with no samples yet has no labels to show
                assert labels == {*metriccatalog.COMMON_LABELS, *definition.labels}, name
            assert labels <= ALLOWED_LABELS, name
            seen.add(name)
    assert seen == set(metriccatalog.BY_NAME), "catalogued but never exported"


def test_names_follow_the_conventions() -> None:
    for m in metriccatalog.CATALOG:
        assert m.name.startswith("kubemr_"), m.name
        assert m.name.endswith("_total") == (m.kind == "counter"), m.name
        if m.kind == "histogram":
            assert m.name.endswith("_seconds") and m.buckets, m.name
        assert m.help.endswith("."), m.name


def test_docs_metrics_md_carries_the_catalogue() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert metriccatalog.catalog_table() in doc, "docs/metrics.md is stale: run `make monitoring`"
    documented = set(re.findall(r"^\| `(kubemr_\w+)` \|", doc, re.MULTILINE))
    assert documented == set(metriccatalog.BY_NAME)


def test_recorded_values_appear_in_the_exposition_and_the_snapshot() -> None:
    runtime = metrics.RuntimeMetrics("reducer")
    runtime.job = "wc"
    runtime.observe("kubemr_fetch_buffer_lock_wait_seconds", 0.002)
    runtime.stage("shuffle_fetch", records_in=10, bytes_in=100)
    runtime.set("kubemr_fetch_buffer_bytes", 42)
    snap = metrics.snapshot(runtime.exposition().decode())
    assert snap["kubemr_fetch_buffer_lock_wait_seconds"] == [
        {"labels": {"role": "reducer"}, "count": 1.0, "sum": 0.002}
    ]
    assert snap["kubemr_stage_input_bytes_total"] == [
        {"labels": {"role": "reducer", "phase": "shuffle_fetch"}, "value": 100.0}
    ]
    assert snap["kubemr_fetch_buffer_bytes"][0]["value"] == 42.0
    # families of this role with no extra labels are exported at zero once the job is known
    assert snap["kubemr_fetched_runs_spilled_total"][0]["value"] == 0.0
    assert "kubemr_map_sort_buffer_bytes" not in snap


def test_the_master_exports_the_job_at_scrape_time() -> None:
    runtime = metrics.RuntimeMetrics("master", "wc")
    runtime.job_view = view
    snap = metrics.snapshot(runtime.exposition().decode())
    assert snap["kubemr_job_progress_ratio"][0]["value"] == 0.8
    assert {"labels": {"role": "master", "phase": "map", "rule": "rate"}, "value": 1.0} in snap[
        "kubemr_speculative_attempts_launched_total"
    ]
    assert snap["kubemr_heartbeat_timeout_seconds"][0]["value"] == 10.0
    assert snap["kubemr_master_restarts"][0]["value"] == 2.0


def test_the_monitoring_server_serves_metrics_and_health(tmp_path: Path) -> None:
    runtime = metrics.RuntimeMetrics("mapper", "wc")
    runtime.set("kubemr_map_sort_buffer_bytes", 7)

    class Config:
        bind = "127.0.0.1"
        advertise_host = "127.0.0.1"
        monitoring_port = 0
        monitoring_file = tmp_path / "addr"

    async def scenario() -> tuple[str, str, str]:
        server = await monitoring.start(Config(), runtime)
        assert server is not None
        address = Config.monitoring_file.read_text()

        def get(path: str) -> tuple[str, str]:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
                return response.headers["Content-Type"], response.read().decode()

        content_type, body = await asyncio.to_thread(get, "/metrics")
        _, health = await asyncio.to_thread(get, "/healthz")
        await monitoring.finish(server, runtime, tmp_path / "final.prom")
        return content_type, body, health

    content_type, body, health = asyncio.run(scenario())
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'kubemr_map_sort_buffer_bytes{kubemr_job="wc",role="mapper"} 7.0' in body
    assert health == "ok\n"
    assert "kubemr_map_sort_buffer_bytes" in (tmp_path / "final.prom").read_text()


def test_the_masters_job_view_counts_restarts_recoveries_and_backups_by_rule(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a b c\n" * 200)
    doc = manifest(
        "wc", {"builtin": "wordcount"}, [str(source)], tmp_path / "out", input={"splitSize": "256"}
    )
    job = plan.plan_job(spec.parse_job(doc, "test"), [])
    output = OutputDir(job.job.spec.output.path)
    journal, _ = master.open_journal(output, job)
    journal.append({"event": "assigned", "attempt": "m0.a1"})
    journal.append(
        {
            "event": "map_done",
            "attempt": "m0.a1",
            "worker": "mapper-0",
            "address": "h:1",
            "records": 1,
            "bytes": 10,
            "counters": {},
            "timings": {},
        }
    )
    journal.close()
    journal, replay = master.open_journal(output, job)  # a restarted master
    state = master.JobState(job, output, journal, replay)
    scheduler = state.scheduler
    for number, rule in ((2, "rate"), (3, "elapsed"), (4, "rate")):
        attempt = f"m1.a{number}"
        scheduler.attempts[attempt] = Attempt(
            attempt, Kind.MAP, 1, "w", 0.0, backup=True, rule=rule
        )
    view = state.job_view()
    journal.close()
    assert view.master_restarts == 1
    assert view.attempts["map", "recovered"] == 1
    assert view.backups_launched == {
        ("map", "rate"): 2,
        ("map", "elapsed"): 1,
        ("reduce", "rate"): 0,
        ("reduce", "elapsed"): 0,
    }
    assert view.backups["map", "running"] == 3
    snap = metrics.snapshot(state.metrics.exposition().decode())
    assert snap["kubemr_master_restarts"][0]["value"] == 1.0
    assert {
        "labels": {"role": "master", "phase": "map", "rule": "elapsed"},
        "value": 1.0,
    } in snap["kubemr_speculative_attempts_launched_total"]
