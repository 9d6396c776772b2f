"""The 6.824-style crash test: map and reduce kill or stall their own worker at random;
the job still ends with output identical to the sequential oracle.

Fates are drawn from the seed and the worker's name (apps/crash.py), so a seed always
gives the same faults. The seeds below are those whose two reducers are both fated to
fault within 57 reduce calls (the smallest of the 3 partitions holds 57 keys): whichever
reducer runs the first reduce task faults, so every run has at least one fault, and the
test checks from the app's fault log that it happened, and that a crashed worker's attempt
was lost (or, near the end of a phase, beaten by a backup and discarded). A stall of
2.5 s may or may not outlast the 1 s heartbeat timeout as a loaded master sees it: it is
only reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testjobs import APPS, manifest, run_cli, sorted_output, word_input, write_manifest

DEFAULT_SEEDS = [3, 4, 7]
SLOW_SEEDS = [100, 104, 105, 106, 107, 108, 118, 119, 123, 124]
SLOW_SEEDS += [126, 129, 134, 141, 144, 150, 158, 162, 163, 169]


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
    faults_log = tmp_path / "faults.log"
    result = run_cli(
        "run",
        str(write_manifest(tmp_path, doc)),
        "--quiet",
        env={"KUBEMR_CRASH_SEED": str(seed), "KUBEMR_CRASH_LOG": str(faults_log)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted_output(out) == expected
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["phase"] == "Succeeded"
    faults = faults_log.read_text().splitlines() if faults_log.exists() else []
    assert faults, f"seed {seed}: no fault happened"
    attempts = summary["attempts"]
    lost = sum(n for outcome, n in attempts.items() if outcome.endswith("_lost"))
    if any(" crash " in f for f in faults):  # the attempt died with its worker
        beaten = sum(n for outcome, n in attempts.items() if outcome.endswith("_discarded"))
        assert lost + beaten >= 1, (faults, attempts)
    print(f"seed {seed}: {faults}; attempts {attempts}")


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
