"""Every example manifest runs as shipped, and equals the sequential oracle.

Each runs from a scratch working directory laid out like the repository (examples/ and
../shared/ beside it), so the manifests' relative paths resolve as they do for users and
nothing is written into the repository.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from testjobs import BOOKS, ROOT, run_cli, sorted_output

EXAMPLES = sorted((ROOT / "examples").glob("*-job.yaml"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "gutenberg").symlink_to(BOOKS)
    work = tmp_path / "main"
    shutil.copytree(ROOT / "examples", work / "examples")
    result = subprocess.run(  # the gzip example's input, as `make example-data` makes it
        ["make", "-f", str(ROOT / "Makefile"), "example-data"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return work


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_equals_oracle(workdir: Path, example: Path) -> None:
    manifest = Path("examples") / example.name
    output = workdir / yaml.safe_load(example.read_text())["spec"]["output"]["path"]
    result = run_cli("run", str(manifest), "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    distributed = sorted_output(output)
    assert distributed, "the example produced no output"
    result = run_cli("run", str(manifest), "--sequential", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert sorted_output(output) == distributed


def test_demo_prints_location_and_top_words(workdir: Path) -> None:
    result = run_cli("run", "examples/wordcount-job.yaml", "--top", "10", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"output: {workdir / 'out' / 'wordcount'}")
    top = [line.strip().split("\t") for line in lines[lines.index("top 10:") + 1 :]]
    assert [word for word, _ in top[:3]] == ["the", "and", "to"]
    counts = [int(count) for _, count in top]
    assert len(counts) == 10 and counts == sorted(counts, reverse=True)
