"""Multi-step jobs (``spec.steps``): each step's output feeds the next with its types
kept, the distributed engine matches the sequential oracle, and no intermediate output
is left behind."""

from __future__ import annotations

import json
from pathlib import Path

from testjobs import APPS, Runner, manifest, run_cli, sorted_output, word_input, write_manifest


def two_step_doc(tmp_path: Path, output: Path) -> dict:
    app = str(APPS / "twostep.py")
    return manifest(
        "twostep",
        {"module": f"{app}:CountWords"},
        word_input(tmp_path),
        output,
        input={"splitSize": "4Ki"},
        mapper={"replicas": 2},
        reducer={"replicas": 2},
        steps=[{"reduceTasks": 3}, {"app": {"module": f"{app}:TopByLength"}, "reduceTasks": 2}],
    )


def test_two_steps_distributed_equal_sequential(tmp_path: Path, run_job: Runner) -> None:
    sequential = tmp_path / "seq"
    doc = two_step_doc(tmp_path, sequential)
    result = run_cli("run", str(write_manifest(tmp_path, doc)), "--sequential")
    assert result.returncode == 0, result.stderr
    expected = sorted_output(sequential)
    assert expected and all(json.loads(line.split("\t")[1])["top"] for line in expected)

    distributed = tmp_path / "dist"
    result = run_job(two_step_doc(tmp_path, distributed))
    assert result.returncode == 0, result.stderr
    assert sorted_output(distributed) == expected
    assert sorted(p.name for p in distributed.glob("part-*")) == ["part-00000", "part-00001"]
    assert not (distributed / "_temporary").exists()
    summary = json.loads((distributed / "_summary.json").read_text())
    assert [s["reduceTasks"] for s in summary["steps"]] == [3, 2]
    assert summary["counters"]["reduce_output_records"] == len(expected)
