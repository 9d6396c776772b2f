"""A reducer whose partition far exceeds its memory budget completes via external merge,
with peak RSS within the stated bound:

    reducer peak RSS <= idle worker RSS + bufferSize + MERGE_FACTOR x 1 MiB

(the fetch buffer holds at most bufferSize of runs; per open run the merge holds a 64 KiB
read buffer and one decoded batch of at most 64 KiB payload, well under 1 MiB).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from kubemr.reducetask import MERGE_FACTOR

from testjobs import Runner, manifest, sorted_output

MIB = 2**20


def bound_slack() -> int:
    """What the bound allows above an idle worker (bufferSize 1Mi + MERGE_FACTOR MiB): an
    in-memory reducer holding a larger partition than this could not meet it."""
    return 1 * MIB + MERGE_FACTOR * MIB


def reducer_peak(summary: dict[str, Any]) -> int:
    return max(v for k, v in summary["peakRssBytes"].items() if k.startswith("reduce"))


def test_partition_larger_than_budget_is_merged_from_disk(tmp_path: Path, run_job: Runner) -> None:
    rng = random.Random(7)
    big = tmp_path / "big.txt"
    with big.open("w") as out:
        for _ in range(1_500_000):
            out.write(f"{rng.getrandbits(64):016x} padpadpad\n")
    (tmp_path / "tiny.txt").write_text("b\na\n")

    idle = manifest(
        "idle",
        {"builtin": "sort"},
        [str(tmp_path / "tiny.txt")],
        tmp_path / "idle",
        shuffle={"bufferSize": "1Mi"},
    )
    assert run_job(idle).returncode == 0
    base = reducer_peak(json.loads((tmp_path / "idle" / "_summary.json").read_text()))

    doc = manifest(
        "external",
        {"builtin": "sort"},
        [str(big)],
        tmp_path / "out",
        input={"splitSize": "1Mi"},
        reduceTasks=1,
        mapper={"replicas": 2},
        shuffle={"bufferSize": "1Mi"},
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    counters = summary["counters"]
    assert counters["shuffle_bytes"] > bound_slack(), (
        "the partition must dwarf the budget and the slack"
    )
    assert counters["shuffle_runs_spilled"] > 0, "runs beyond the budget go to disk"
    assert counters["merge_passes"] > 0, "more runs than MERGE_FACTOR need merge passes"
    bound = base + bound_slack()
    peak = reducer_peak(summary)
    assert peak <= bound, f"reducer peak {peak / MIB:.0f} MiB > bound {bound / MIB:.0f} MiB"
    lines = big.read_text().splitlines()
    assert sorted_output(tmp_path / "out") == sorted(lines)
    output = (tmp_path / "out" / "part-00000").read_text().splitlines()
    assert output == sorted(lines)
