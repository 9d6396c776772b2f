"""The 6.824-style crash test: map and reduce kill or stall their own worker at random;
the job still ends with output identical to the sequential oracle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testjobs import APPS, manifest, run_cli, sorted_output, word_input, write_manifest

DEFAULT_SEEDS = [1, 2, 3]
SLOW_SEEDS = list(range(100, 120))


def crash_job(tmp_path: Path, seed: int) -> dict[str, Any]:
    return manifest(
        f"crash-{seed}",
        {"module": f"{APPS / 'crash.py'}:Crash"},
        word_input(tmp_path),
        tmp_path / "out",
        input={"splitSize": "2Ki"},
        reduceTasks=3,
        mapper={"replicas": 3},
        reducer={"replicas": 2},
        faultTolerance={"heartbeatTimeout": "1s"},
    )


def run_crash(tmp_path: Path, seed: int, oracle: Callable[[dict[str, Any]], list[str]]) -> None:
    doc = crash_job(tmp_path, seed)
    expected = oracle(doc)
    result = run_cli(
        "run",
        str(write_manifest(tmp_path, doc)),
        "--quiet",
        env={"KUBEMR_CRASH_SEED": str(seed)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted_output(out) == expected
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["phase"] == "Succeeded"


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_crash_app_output_equals_oracle(
    tmp_path: Path, seed: int, oracle: Callable[[dict[str, Any]], list[str]]
) -> None:
    run_crash(tmp_path, seed, oracle)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_crash_app_many_seeds(
    tmp_path: Path, seed: int, oracle: Callable[[dict[str, Any]], list[str]]
) -> None:
    run_crash(tmp_path, seed, oracle)


def test_workers_that_always_crash_exhaust_the_restart_limit(tmp_path: Path) -> None:
    """Every mapper dies at its first map call: the launcher replaces it 3 times per
    replica, then fails the job, leaving no output behind."""
    doc = manifest(
        "always-crash",
        {
            "module": f"{APPS / 'crash.py'}:Crash",
            "args": {"crash": "1", "stall": "0", "map_calls": "1"},
        },
        word_input(tmp_path, files=1, lines=50),
        tmp_path / "out",
        mapper={"replicas": 1},
        reducer={"replicas": 1},
        faultTolerance={"heartbeatTimeout": "1s"},
    )
    result = run_cli(
        "run", str(write_manifest(tmp_path, doc)), "--quiet", env={"KUBEMR_CRASH_SEED": "1"}
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "restart limit (6) is reached" in result.stderr
    assert "mapper-0-r6 exited with code 1" in result.stderr
    assert not list((tmp_path / "out").glob("part-*"))
