"""Splits own exactly the lines that start inside them, whatever the sizes."""

import random
from pathlib import Path

import pytest
from kubemr import inputs
from kubemr.splits import Split, plan_splits


def test_plan_splits() -> None:
    splits = plan_splits([("a", 10), ("empty", 0), ("b", 3)], 4)
    assert splits == [Split("a", 0, 4), Split("a", 4, 8), Split("a", 8, 10), Split("b", 0, 3)]
    with pytest.raises(ValueError):
        plan_splits([("a", 1)], 0)


@pytest.mark.parametrize("seed", range(5))
def test_blocks_cover_every_line_once(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for trial in range(40):
        lines = [b"x" * rng.choice([0, 1, 2, 5, 17, 300]) for _ in range(rng.randint(0, 80))]
        ending = rng.choice([b"\n", b"\r\n"])
        data = ending.join(lines) + (ending if lines and rng.random() < 0.5 else b"")
        path = tmp_path / f"f{trial}"
        path.write_bytes(data)
        for split_size in (1, 2, 3, 7, 50, 1000):
            splits = plan_splits([(str(path), len(data))], split_size)
            blocks = [b for s in splits for b in inputs.read_blocks(s, rng.choice([1, 2, 64]))]
            assert b"".join(blocks) == data
            lines_read = [line for s in splits for line in inputs.read_lines(s)]
            expected = data.decode().split("\n")
            if expected and expected[-1] == "":
                expected.pop()
            assert lines_read == [line.removesuffix("\r") for line in expected]


def test_resolve_inputs_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "_hidden").write_text("x\n")
    with pytest.raises(inputs.InputError) as caught:
        inputs.resolve_inputs([str(tmp_path / "missing.txt"), str(tmp_path / "*.csv")])
    message = str(caught.value)
    assert "spec.input.paths[0]: no such file or directory" in message
    assert "missing.txt" in message
    assert "spec.input.paths[1]" in message and "matches no files" in message
    found = inputs.resolve_inputs([str(tmp_path), str(tmp_path / "*.txt")])
    assert found == [(str(tmp_path / "a.txt"), 2)]


def test_undecodable_bytes_survive(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    path.write_bytes(b"caf\xe9 ok\n\xff\xfe\n")
    lines = list(inputs.read_lines(Split(str(path), 0, path.stat().st_size)))
    assert [line.encode("utf-8", "surrogateescape") for line in lines] == [
        b"caf\xe9 ok",
        b"\xff\xfe",
    ]
