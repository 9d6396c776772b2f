"""The combining hash map: what reaches the runs equals combining every key's values in
order, whatever the key types, value types, folds and spills; memory stays bounded."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubemr import combinetable, mapbuffer, records, runs
from kubemr.partitioning import hash_partitioner


def _summed(key: Any, values: Iterator[int]) -> Iterator[tuple[Any, int]]:
    yield key, sum(values)


def _joined(key: Any, values: Iterator[list[int]]) -> Iterator[tuple[Any, list[int]]]:
    out: list[int] = []
    for value in values:
        out.extend(value)
    yield key, out


def _runs(buffer: mapbuffer.MapBuffer, out: Path) -> dict[bytes, list[Any]]:
    """Finish ``buffer``; every partition's records by encoded key, checking order."""
    buffer.finish(out)
    got: dict[bytes, list[Any]] = defaultdict(list)
    for index in range(buffer.reduce_tasks):
        encoded = list(runs.read_run(out / f"part-{index:05d}.run"))
        assert [k for k, _ in encoded] == sorted(k for k, _ in encoded)
        for key, value in encoded:
            got[key].append(records.decode_value(value))
    return got


def _grouped(pairs: list[tuple[Any, Any]]) -> dict[bytes, list[Any]]:
    want: dict[bytes, list[Any]] = defaultdict(list)
    for key, value in pairs:
        want[records.encode_key(key)].append(value)
    return want


KEYS: list[Any] = [1, 1.0, True, "1", b"1", None, 0.0, -0.0, 0, False, "", b"", -1, 2**70]


@pytest.mark.parametrize("capacity", [2**13, 2**15, 2**30])
def test_keys_equal_in_python_but_not_encoded_never_merge(tmp_path: Path, capacity: int) -> None:
    rng = random.Random(capacity)
    pairs = [(rng.choice(KEYS), rng.randrange(10)) for _ in range(5_000)]
    buffer = mapbuffer.MapBuffer(3, hash_partitioner(3), capacity, tmp_path / "s", _summed)
    buffer.add(iter(pairs))
    got = _runs(buffer, tmp_path / "out")
    assert {k: sum(v) for k, v in got.items()} == {k: sum(v) for k, v in _grouped(pairs).items()}
    assert (buffer.stats["spills"] > 0) == (capacity < 2**30)
    assert buffer.stats["map_output_records"] == len(pairs)


@pytest.mark.parametrize("capacity", [2**12, 2**16, 2**30])
def test_folds_and_spills_keep_each_keys_values_in_input_order(
    tmp_path: Path, capacity: int
) -> None:
    rng = random.Random(1)
    pairs = [(f"k{rng.randrange(50)}", [i]) for i in range(10_000)]
    buffer = mapbuffer.MapBuffer(2, hash_partitioner(2), capacity, tmp_path / "s", _joined)
    buffer.add(iter(pairs))
    got = _runs(buffer, tmp_path / "out")
    joined = {k: [i for part in v for i in part] for k, v in got.items()}
    assert joined == {k: [i for part in v for i in part] for k, v in _grouped(pairs).items()}


def test_values_mutated_after_map_yields_them_are_buffered_as_yielded(tmp_path: Path) -> None:
    def mutating_map() -> Iterator[tuple[str, list[int]]]:
        value: list[int] = []
        for i in range(200):
            value.append(i)
            yield "k", value  # the same list, changed after each yield

    buffer = mapbuffer.MapBuffer(1, hash_partitioner(1), 2**30, tmp_path / "s", _joined)
    buffer.add(mutating_map())
    got = _runs(buffer, tmp_path / "out")
    assert [i for part in got[records.encode_key("k")] for i in part] == [
        i for n in range(1, 201) for i in range(n)
    ]


def test_a_combiner_that_does_not_shrink_is_folded_rarely_and_keeps_everything(
    tmp_path: Path,
) -> None:
    calls = 0

    def identity(key: Any, values: Iterator[int]) -> Iterator[tuple[Any, int]]:
        nonlocal calls
        calls += 1
        for value in values:
            yield key, value

    pairs = [("k", i) for i in range(20_000)]
    buffer = mapbuffer.MapBuffer(1, hash_partitioner(1), 2**30, tmp_path / "s", identity)
    buffer.add(iter(pairs))
    got = _runs(buffer, tmp_path / "out")
    assert got[records.encode_key("k")] == list(range(20_000))
    assert calls < 20  # folded at doubling lengths, not at every value past FOLD_AT


def test_a_combiner_must_keep_its_key(tmp_path: Path) -> None:
    def renaming(key: Any, values: Iterator[int]) -> Iterator[tuple[Any, int]]:
        yield f"{key}!", sum(values)

    buffer = mapbuffer.MapBuffer(1, hash_partitioner(1), 2**30, tmp_path / "s", renaming)
    with pytest.raises(records.RecordError, match="must keep its key"):
        buffer.add(("k", 1) for _ in range(combinetable.FOLD_AT))


def test_estimated_size_stays_within_capacity(tmp_path: Path) -> None:
    capacity = 2**16
    sizes: list[int] = []
    buffer = mapbuffer.MapBuffer(2, hash_partitioner(2), capacity, tmp_path / "s", _summed)
    original = buffer.spill

    def watched(full: bool = False) -> None:
        assert buffer.table is not None
        sizes.append(buffer.table.size)
        original(full)

    buffer.spill = watched  # type: ignore[method-assign]
    buffer.add((f"word{i}", i) for i in range(20_000))  # distinct keys: only spills bound it
    buffer.finish(tmp_path / "out")
    largest_record = max(len(f"word{i}") for i in range(20_000)) + 49 + 48 + 200
    assert sizes and max(sizes) < capacity + largest_record
    assert buffer.stats["spills"] == len(sizes) > 2
