"""Splits own exactly the lines that start inside them, whatever the sizes."""

import random
from pathlib import Path

import pytest
from kubemr import inputs, plan, spec
from kubemr.splits import (
    DEFAULT_SPLIT_SIZE,
    MIN_DEFAULT_SPLIT_SIZE,
    Split,
    default_split_size,
    plan_splits,
)

MIB = 2**20


def test_plan_splits() -> None:
    splits = plan_splits([("a", 10), ("empty", 0), ("b", 3)], 4)
    assert splits == [Split("a", 0, 4), Split("a", 4, 8), Split("a", 8, 10), Split("b", 0, 3)]
    with pytest.raises(ValueError):
        plan_splits([("a", 1)], 0)


@pytest.mark.parametrize(
    ("total", "mappers", "expected"),
    [
        (64 * MIB, 2, 32 * MIB),  # the case: one split per mapper, not one in all
        (64 * MIB, 1, DEFAULT_SPLIT_SIZE),
        (256 * MIB, 2, DEFAULT_SPLIT_SIZE),  # input >= 64Mi x mappers: the default
        (128 * MIB, 2, DEFAULT_SPLIT_SIZE),
        (100 * MIB + 1, 3, 100 * MIB // 3 + 1),  # rounded up: never one split too many
        (3 * MIB, 8, MIN_DEFAULT_SPLIT_SIZE),  # no splits below the floor
        (0, 2, MIN_DEFAULT_SPLIT_SIZE),
    ],
)
def test_default_split_size(total: int, mappers: int, expected: int) -> None:
    assert default_split_size(total, mappers) == expected
    if total >= MIN_DEFAULT_SPLIT_SIZE * mappers:
        splits = plan_splits([("f", total)], expected)
        assert len(splits) == max(mappers, -(-total // DEFAULT_SPLIT_SIZE))


def _job(path: Path, mappers: int, split_size: str | None) -> spec.MapReduceJob:
    body: dict[str, object] = {"paths": [str(path)]}
    if split_size is not None:
        body["splitSize"] = split_size
    return spec.parse_job(
        {
            "apiVersion": spec.API_VERSION,
            "kind": spec.KIND,
            "metadata": {"name": "splits"},
            "spec": {
                "app": {"builtin": "wordcount"},
                "input": body,
                "output": {"path": str(path.parent / "out")},
                "mapper": {"replicas": mappers},
            },
        }
    )


@pytest.mark.parametrize(
    ("mappers", "split_size", "tasks"), [(2, None, 2), (4, None, 4), (2, "8Mi", 1), (2, "1Mi", 8)]
)
def test_plan_uses_every_mapper_unless_split_size_is_set(
    tmp_path: Path, mappers: int, split_size: str | None, tasks: int
) -> None:
    path = tmp_path / "in.txt"
    with path.open("wb") as out:  # 8 MiB of short lines
        out.truncate(0)
        out.write(b"word\n" * (8 * MIB // 5) + b"w" * (8 * MIB % 5 - 1) + b"\n")
    assert path.stat().st_size == 8 * MIB
    job_plan = plan.plan_job(_job(path, mappers, split_size))
    assert len(job_plan.splits) == tasks
    assert sum(s.length for s in job_plan.splits) == 8 * MIB


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
