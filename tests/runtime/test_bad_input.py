"""Bad input gets a clear error naming the field or file, and never half-written output."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from testjobs import APPS, Runner, manifest, run_cli, sorted_output, write_manifest


def test_missing_input_fails_before_any_process(tmp_path: Path) -> None:
    doc = manifest(
        "missing",
        {"builtin": "wordcount"},
        [str(tmp_path / "nope.txt"), str(tmp_path / "*.none")],
        tmp_path / "out",
    )
    result = run_cli("run", str(write_manifest(tmp_path, doc)), env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 2
    assert "spec.input.paths[0]: no such file or directory" in result.stderr
    assert "nope.txt" in result.stderr
    assert "spec.input.paths[1]" in result.stderr and "matches no files" in result.stderr
    assert not list(tmp_path.glob("kubemr-*")), "no job process should have started"
    assert not (tmp_path / "out").exists()


def test_invalid_manifest_lists_every_field(tmp_path: Path) -> None:
    doc = manifest(
        "bad",
        {"builtin": "wordcount", "module": "x:Y"},
        [],
        tmp_path / "out",
        reduceTasks=-2,
        shuffle={"mode": "sideways"},
        colour="blue",
    )
    result = run_cli("run", str(write_manifest(tmp_path, doc)))
    assert result.returncode == 2
    for fragment in (
        "exactly one of app.builtin and app.module",
        "spec.input.paths",
        "spec.reduceTasks",
        "-2",
        "spec.shuffle.mode",
        "'sideways'",
        "spec.colour: unknown field",
    ):
        assert fragment in result.stderr


def test_unknown_module_is_named(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\n")
    doc = manifest(
        "nomod",
        {"module": "no_such_package.apps:App"},
        [str(tmp_path / "in.txt")],
        tmp_path / "out",
    )
    result = run_cli("run", str(write_manifest(tmp_path, doc)))
    assert result.returncode == 2
    assert "spec.app.module: cannot import 'no_such_package.apps'" in result.stderr


def test_empty_files_give_empty_outputs(tmp_path: Path, run_job: Runner) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_bytes(b"")
    doc = manifest(
        "empty",
        {"builtin": "wordcount"},
        [str(tmp_path / "*.txt")],
        tmp_path / "out",
        reduceTasks=3,
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    parts = sorted((tmp_path / "out").glob("part-*"))
    assert [p.name for p in parts] == ["part-00000", "part-00001", "part-00002"]
    assert all(p.read_bytes() == b"" for p in parts)
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_undecodable_bytes_pass_through(tmp_path: Path, run_job: Runner) -> None:
    lines = [b"caf\xe9 latin-1", b"\xff\xfe\x00 binary", b"plain ascii", "naïve utf-8".encode()]
    (tmp_path / "in.txt").write_bytes(b"\r\n".join(lines) + b"\r\n")
    doc = manifest(
        "bytes", {"builtin": "sort"}, [str(tmp_path / "in.txt")], tmp_path / "out", reduceTasks=2
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    got = [
        line
        for p in sorted((tmp_path / "out").glob("part-*"))
        for line in p.read_bytes().splitlines()
    ]
    assert sorted(got) == sorted(lines)
    words = manifest(
        "bytes-wc", {"builtin": "wordcount"}, [str(tmp_path / "in.txt")], tmp_path / "wc"
    )
    assert run_job(words).returncode == 0
    assert "caf\t1" in sorted_output(tmp_path / "wc")
    assert "naïve\t1" in sorted_output(tmp_path / "wc")


def test_a_single_50_mib_line(tmp_path: Path, run_job: Runner) -> None:
    word_line = b"alpha beta gamma " * (50 * 2**20 // 17)
    (tmp_path / "long.txt").write_bytes(b"before\n" + word_line + b"\n" + b"x" * 2**20 + b"\nend")
    doc = manifest(
        "long",
        {"builtin": "wordcount"},
        [str(tmp_path / "long.txt")],
        tmp_path / "out",
        input={"splitSize": "4Mi"},
        reduceTasks=2,
        mapper={"replicas": 2},
    )
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    n = 50 * 2**20 // 17
    assert sorted_output(tmp_path / "out") == sorted(
        [f"alpha\t{n}", f"beta\t{n}", f"gamma\t{n}", "before\t1", "end\t1", f"{'x' * 2**20}\t1"]
    )


def test_committed_output_is_refused_unless_overwrite(tmp_path: Path, run_job: Runner) -> None:
    (tmp_path / "in.txt").write_text("one two two\n")
    doc = manifest("twice", {"builtin": "wordcount"}, [str(tmp_path / "in.txt")], tmp_path / "out")
    assert run_job(doc).returncode == 0
    before = sorted_output(tmp_path / "out")
    again = run_job(doc)
    assert again.returncode == 2
    assert "already holds the output of a committed job" in again.stderr
    assert "spec.output.overwrite" in again.stderr
    assert sorted_output(tmp_path / "out") == before
    doc["spec"]["output"]["overwrite"] = True
    (tmp_path / "in.txt").write_text("three\n")
    assert run_job(doc).returncode == 0
    assert sorted_output(tmp_path / "out") == ["three\t1"]


def test_output_with_foreign_files_is_refused(tmp_path: Path, run_job: Runner) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.csv").write_text("keep me")
    doc = manifest(
        "foreign", {"builtin": "wordcount"}, [str(tmp_path / "in.txt")], tmp_path / "out"
    )
    doc["spec"]["output"]["overwrite"] = True
    result = run_job(doc)
    assert result.returncode == 2 and "precious.csv" in result.stderr
    assert (tmp_path / "out" / "precious.csv").read_text() == "keep me"


def test_map_that_raises_fails_the_job_naming_split_and_exception(
    tmp_path: Path, run_job: Runner
) -> None:
    (tmp_path / "a.txt").write_text("fine line\n" * 50)
    (tmp_path / "b.txt").write_text("ok\nthis is POISON\nok\n")
    doc = manifest(
        "poison",
        {"module": f"{APPS / 'poison.py'}:Poison"},
        [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")],
        tmp_path / "out",
        reduceTasks=2,
        faultTolerance={"maxTaskAttempts": 3},
    )
    result = run_job(doc)
    assert result.returncode == 1
    assert "map task 1" in result.stderr and "b.txt[0:" in result.stderr
    assert "failed 3 times" in result.stderr
    assert "ValueError: cannot map poisoned line 'this is POISON'" in result.stderr
    visible = sorted(p.name for p in (tmp_path / "out").glob("*"))
    assert visible == ["_FAILED"], f"a failed job left output behind: {visible}"
    kept = json.loads((tmp_path / "out" / "_FAILED").read_text())["report"]["failure"]
    assert kept["task"].startswith("map task 1 (split ") and kept["attempts"] == 3
    assert "cannot map poisoned line" in kept["error"]


def test_manifest_file_with_several_documents(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a b\n")
    doc = manifest("multi", {"builtin": "wordcount"}, [str(tmp_path / "in.txt")], tmp_path / "o")
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace"}, doc]))
    result = run_cli("validate", str(path))
    assert result.returncode == 0 and "1 map tasks" in result.stdout


def test_slow_worker_flag_names_the_bad_slot_or_factor(tmp_path: Path) -> None:
    doc = manifest("slow", {"builtin": "wordcount"}, [str(APPS / "crash.py")], tmp_path / "out")
    path = str(write_manifest(tmp_path, doc))
    env = {"TMPDIR": str(tmp_path)}
    result = run_cli("run", path, "--slow-worker", "mapper-7=10", env=env)
    assert result.returncode == 1
    assert "--slow-worker mapper-7: no such worker slot" in result.stderr
    assert "mapper-0, reducer-0" in result.stderr
    assert not list(tmp_path.glob("kubemr-*")), "no job process should have started"
    result = run_cli("run", path, "--slow-worker", "mapper-0=0.5", env=env)
    assert result.returncode == 2
    assert "'mapper-0=0.5': expected SLOT=FACTOR" in result.stderr
    assert not (tmp_path / "out").exists()
