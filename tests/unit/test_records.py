"""Encoded keys order like the keys; values round-trip; output lines are formatted."""

import random
import subprocess
import sys

import pytest
from kubemr import partitioning, records


def test_string_keys_order_like_python() -> None:
    rng = random.Random(1)
    alphabet = "aAzZ09 é\u00ff\u4e2d\U0001f600\udcff"
    keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(2000)]
    assert sorted(keys, key=records.encode_key) == sorted(keys)
    for key in keys:
        assert records.decode_key(records.encode_key(key)) == key


def test_number_keys_order_numerically() -> None:
    rng = random.Random(2)
    ints = [rng.randint(-(2**70), 2**70) for _ in range(1000)] + [0, -1, 1, 255, 256, -256]
    assert sorted(ints, key=records.encode_key) == sorted(ints)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(1000)] + [0.0, -0.5, float("inf")]
    assert sorted(floats, key=records.encode_key) == sorted(floats)
    for key in ints + floats + [None, True, False, b"\x00raw"]:
        assert records.decode_key(records.encode_key(key)) == key


def test_bad_keys_and_values_are_refused() -> None:
    with pytest.raises(records.RecordError, match="keys must be"):
        records.encode_key(["a", "list"])
    with pytest.raises(records.RecordError, match="cannot carry"):
        records.encode_value(object())


def test_values_round_trip() -> None:
    for value in ["s", "\udcff", 3, -2.5, True, None, b"\x00\xff", [1, "a", [None]], {"k": [1]}]:
        assert records.decode_value(records.encode_value(value)) == value


def test_output_lines() -> None:
    assert records.format_line("word", 3) == "word\t3"
    assert records.format_line("line only", None) == "line only"
    assert records.format_line("k", [1, "x"]) == 'k\t[1,"x"]'
    assert records.format_line(b"raw", True) == "raw\ttrue"


def test_hash_partitioning_is_stable_across_processes() -> None:
    keys = [records.encode_key(f"word{i}") for i in range(50)]
    here = [partitioning.hash_partitioner(7)(k) for k in keys]
    script = (
        "from kubemr import partitioning, records;"
        "p = partitioning.hash_partitioner(7);"
        "print([p(records.encode_key(f'word{i}')) for i in range(50)])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        assert out.strip() == str(here)
    assert len(set(here)) > 3


def test_range_partitioner_keeps_order() -> None:
    rng = random.Random(3)
    keys = sorted(records.encode_key(str(rng.random())) for _ in range(1000))
    bounds = partitioning.boundaries_from_sample(keys[::10], 5)
    part = partitioning.range_partitioner(bounds)
    assigned = [part(k) for k in keys]
    assert assigned == sorted(assigned)
    assert set(assigned) == set(range(5))


ELEMENTS = [None, False, True, -(2**70), -256, -1, 0, 1, 255, 2**64, -1.5, 0.0, 2.5]
ELEMENTS += [
    "",
    "a",
    "a\x00",
    "a\x00\x01",
    "ab",
    "b",
    "\U0001f600",
    b"",
    b"\x00",
    b"\x00\xff",
    b"\x01",
]


def _rank(key: object) -> tuple[object, ...]:
    """The documented order, independently of the encoding: type rank, then value;
    tuples element by element."""
    if isinstance(key, tuple):
        return (7, tuple(_rank(e) for e in key))
    if key is None:
        return (0,)
    if isinstance(key, bool):
        return (1, key)
    if isinstance(key, int):
        return (2, key)
    if isinstance(key, float):
        return (3, key)
    if isinstance(key, str):
        return (4, key)
    assert isinstance(key, bytes)
    return (5, key)


def test_tuple_keys_order_element_by_element_and_round_trip() -> None:
    rng = random.Random(7)

    def key(depth: int = 0) -> object:
        if depth < 2 and rng.random() < 0.3:
            return tuple(key(depth + 1) for _ in range(rng.randint(0, 3)))
        return rng.choice(ELEMENTS)

    keys = [key() for _ in range(3000)] + [(), ((),), ("a",), ("a", None), ("a", ("b",))]
    for k in keys:
        assert records.decode_key(records.encode_key(k)) == k
        assert type(records.decode_key(records.encode_key(k))) is type(k)
    assert sorted(keys, key=records.encode_key) == sorted(keys, key=_rank)
    assert records.encode_key(("z",)) > records.encode_key(b"\xff" * 8)  # tuples last


def test_tuple_keys_partition_by_their_first_element() -> None:
    hashed = partitioning.hash_partitioner(13)
    for user in ["u1", "u2", "", "a\x00b", 7, ("nested", 1)]:
        parts = {hashed(records.encode_key((user, t, "x"))) for t in range(-50, 50)}
        assert len(parts) == 1
    sample = [records.encode_key((f"u{i % 10}", i)) for i in range(1000)]
    ranged = partitioning.range_partitioner(partitioning.boundaries_from_sample(sample, 4))
    for i in range(10):
        parts = {ranged(records.encode_key((f"u{i}", t))) for t in range(-5, 2000, 7)}
        assert len(parts) == 1
    assert hashed(records.encode_key("plain")) == hashed(records.encode_key("plain"))
