"""The map buffer's final merge: many spills merge in bounded passes, keeping order."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubemr import mapbuffer, native, records, runs
from kubemr.partitioning import hash_partitioner


def _summed(key: Any, values: Iterator[int]) -> Iterator[tuple[Any, int]]:
    yield key, sum(values)


@pytest.mark.parametrize("pure", [False, True], ids=["native", "pure"])
@pytest.mark.parametrize("combine", [False, True])
def test_many_spills_merge_in_passes_and_keep_value_order(
    tmp_path: Path, combine: bool, pure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pure:
        monkeypatch.setattr(native, "core", None)
    rng = random.Random(7)
    pairs = [(f"k{rng.randrange(300)}", i) for i in range(40_000)]
    buffer = mapbuffer.MapBuffer(
        3, hash_partitioner(3), 2**15, tmp_path / "spill", _summed if combine else None
    )
    buffer.add(iter(pairs))
    buffer.finish(tmp_path / "out")
    assert len(buffer.spills) > 2 * mapbuffer.MERGE_FACTOR  # at least two merge passes
    got: dict[str, list[int]] = defaultdict(list)
    for index in range(3):
        encoded = list(runs.read_run(tmp_path / "out" / f"part-{index:05d}.run"))
        assert [k for k, _ in encoded] == sorted(k for k, _ in encoded)
        for key, value in encoded:
            got[records.decode_key(key)].append(records.decode_value(value))
    want: dict[str, list[int]] = defaultdict(list)
    for key, value in pairs:
        want[key].append(value)
    if combine:
        assert {k: sum(v) for k, v in got.items()} == {k: sum(v) for k, v in want.items()}
    else:
        assert got == want  # every value, in input order
    assert not list((tmp_path / "spill").iterdir())  # spills and merge passes removed
