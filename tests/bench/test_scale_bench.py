"""Smoke run of the scale benchmark at a tiny size: the simulated jobs over the real
scheduler succeed with every task done once, the journal recovers all of it, the fault
scenarios do what they say, and it prints its figures. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testjobs import run_bench


@pytest.mark.bench
def test_scale_bench_simulates_the_seed_and_the_papers_scenarios(tmp_path: Path) -> None:
    maps, reduces = 400, 30
    result = run_bench(
        "scale.py",
        tmp_path,
        *("--maps", str(maps), "--reduces", str(reduces), "--machines", "20"),
        *("--paper-maps", "300", "--paper-reduces", "60", "--paper-machines", "40"),
        *("--paper-kill", "8", "--slow-share", "0.1", "--map-seconds", "5"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for text in ("seed scale: M = 400", "assignments/s", "recovery from it", "/status report"):
        assert text in out, out
    assert "M = 200,000" in out and "R = 5,000" in out, "kubemr plan for 12.8 TB"
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    seed = results["seed"]
    figures = seed["figures"]
    assert figures["phase"] == "Succeeded"
    assert figures["attempts"]["map_succeeded"] == maps
    assert figures["attempts"]["reduce_succeeded"] == reduces
    assert figures["assignments"] >= maps + reduces
    assert seed["recovery"]["recovered_maps"] == maps
    assert seed["recovery"]["recovered_reduces"] == reduces
    assert figures["status_bytes"] > 0 and seed["location"]["memory_per_map_output"] > 0
    assert figures["checkpoints"] > 0, "the partition sizes are journaled as checkpoints"
    assert 0 < seed["recovery"]["sized_maps"] <= maps
    runs = results["paper"]["runs"]
    assert {name for name in runs} == {"normal", "no-backups", "kill"}
    assert all(run["phase"] == "Succeeded" for scenario in runs.values() for run in scenario)
    assert runs["no-backups"][0]["backups"] == 0
    assert runs["normal"][0]["backups"] > 0, "4 slow machines of 40 get backed up"
    kill = runs["kill"][0]
    assert kill["killed"] == 16, "8 machines: a mapper and a reducer each"
    assert kill["attempts"].get("map_lost", 0) > 0, "the killed mappers' outputs run again"
    assert not list((tmp_path / "cache").glob("scale-*")), "the run's temporary folder is left"
