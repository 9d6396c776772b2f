"""`kubemr plan` on the command line: the seed's job, real input paths, --apply, errors."""

from __future__ import annotations

from pathlib import Path

import yaml

from testjobs import BOOKS, manifest, run_cli, write_manifest


def test_plan_prints_the_seeds_job() -> None:
    result = run_cli("plan", "--input-size", "12.8TB", "--workers", "2000")
    assert result.returncode == 0, result.stderr
    for figure in ("M = 200,000", "W = 2,000", "R = 5,000", "master memory"):
        assert figure in result.stdout


def test_apply_sizes_the_manifests_input_and_writes_a_valid_manifest(tmp_path: Path) -> None:
    doc = manifest("sized", {"builtin": "wordcount"}, [str(BOOKS)], tmp_path / "out")
    path = write_manifest(tmp_path, doc)
    result = run_cli("plan", "--workers", "3", "--split-size", "256Ki", "--apply", str(path))
    assert result.returncode == 0, result.stderr
    total = sum(f.stat().st_size for f in BOOKS.iterdir() if not f.name.startswith((".", "_")))
    assert f"{total:,} bytes in" in result.stdout
    written = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]
    assert written["input"]["splitSize"] == "256Ki"
    assert (written["reduceTasks"], written["mapper"]["replicas"]) == (8, 3)
    assert written["reducer"]["replicas"] == 3
    validated = run_cli("validate", str(path))
    assert validated.returncode == 0, validated.stderr
    maps = next(line for line in result.stdout.splitlines() if "M = " in line)
    assert f"{validated.stdout.split('valid; ')[1].split(' map')[0]} map tasks" in maps


def test_a_bad_size_or_no_input_is_an_error_naming_it(tmp_path: Path) -> None:
    bad = run_cli("plan", "--input-size", "lots", "--workers", "2")
    assert bad.returncode == 2 and "'lots' is not a size" in bad.stderr
    missing = run_cli("plan", "--input", str(tmp_path / "nope"), "--workers", "2")
    assert missing.returncode == 2 and "nope" in missing.stderr
    nothing = run_cli("plan", "--workers", "2")
    assert nothing.returncode == 2 and "--input-size" in nothing.stderr
