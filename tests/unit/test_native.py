"""The native core (kubemr._native) equals the pure-Python reference on random inputs.

Every native function is checked against the Python code that defines it: the
partitioners, key and value encoding, the sort buffer's loop (MapBuffer.add), the
combining map's loop (CombineTable.add), and the frame codec. The extension must be built
(``make venv``): these tests fail, not skip, when it is missing.
"""

from __future__ import annotations

import bisect
import functools
import random
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kubemr import combinetable, mapbuffer, native, partitioning, records, reducetask, runs

CORE = native.load({})
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def core() -> ModuleType:
    assert CORE is not None, "kubemr._native was not built: run `make venv` (needs gcc)"
    return CORE


def test_the_extension_is_built_and_used_by_default() -> None:
    assert native.built()
    assert native.load({}) is core()
    assert native.load({native.ENV: "0"}) is None
    assert native.load({native.ENV: "1"}) is core()


def test_without_the_extension_kubemr_takes_the_pure_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubemr._native", None)  # as if it was never built
    assert native.load({}) is None
    assert not native.built()


# --- strategies -----------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
"""str with any code point, lone surrogates included (undecodable input bytes)."""
scalar_keys = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    texts,
    st.binary(max_size=12),
)
keys = st.one_of(scalar_keys, st.tuples(scalar_keys, scalar_keys), st.tuples(texts))
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(allow_nan=False),
        texts,
        st.binary(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
encoded_keys = st.one_of(keys.map(records.encode_key), st.binary(min_size=1, max_size=40))


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return "raised", type(exc)


# --- partitioning and encoding --------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=300))
def test_crc32_is_zlibs(data: bytes) -> None:
    assert core().crc32(data) == zlib.crc32(data)


@SETTINGS
@given(st.lists(encoded_keys, max_size=30), st.integers(min_value=1, max_value=64))
def test_hash_partitions_equal_the_reference(batch: list[bytes], reduce_tasks: int) -> None:
    partitioner = partitioning.HashPartitioner(reduce_tasks)
    expected = [partitioner(k) for k in batch]
    assert core().partitions(batch, reduce_tasks) == expected
    assert [core().partition(k, reduce_tasks) for k in batch] == expected


@SETTINGS
@given(st.lists(encoded_keys, max_size=30), st.lists(encoded_keys, max_size=8))
def test_range_partitions_equal_the_reference(batch: list[bytes], points: list[bytes]) -> None:
    boundaries = sorted(points)
    partitioner = partitioning.RangePartitioner(boundaries)
    expected = [bisect.bisect_right(boundaries, k) for k in batch]
    assert [partitioner(k) for k in batch] == expected
    assert core().partitions(batch, boundaries) == expected


@SETTINGS
@given(keys)
def test_key_encoding_equals_the_reference(key: Any) -> None:
    assert core().encode_key(records.encode_key, key) == records.encode_key(key)


def _encode(value: Any) -> bytes:
    return records.value_encoder()(value)  # the encoder in use now


def _decode(data: bytes) -> Any:
    return records.value_decoder()(data)


def _with(use: ModuleType | None, fn: Any, *args: Any) -> tuple[str, Any]:
    saved, native.core = native.core, use
    try:
        return _outcome(fn, *args)
    finally:
        native.core = saved


@SETTINGS
@given(values)
def test_value_encoding_equals_the_reference(value: Any) -> None:
    encoded = _with(core(), _encode, value)
    assert encoded == _outcome(records.encode_value, value)
    assert _with(None, _encode, value) == encoded


edge_values = st.sampled_from(
    [0, 127, 128, -32, -33, 255, 256, 2**16, 2**32, 2**63 - 1, 2**64 - 1, -(2**63), 1.5, -0.0]
)


@SETTINGS
@given(st.one_of(values, edge_values))
def test_value_decoding_equals_the_reference(value: Any) -> None:
    encoded = _outcome(records.encode_value, value)
    assume(encoded[0] == "ok")  # else not a value kubemr carries (an int beyond 64 bits)
    data = encoded[1]
    assert _with(core(), _decode, data) == ("ok", value)
    assert records.decode_value(data) == value


@SETTINGS
@given(st.binary(max_size=12))
def test_decoding_any_value_bytes_agrees_with_msgpack(data: bytes) -> None:
    fast = _with(core(), _decode, data)
    reference = _outcome(records.decode_value, data)
    if fast[0] == "ok" and isinstance(fast[1], float) and fast[1] != fast[1]:
        assert reference[0] == "ok" and reference[1] != reference[1]  # NaN
    else:
        assert fast == reference


# --- the sort buffer and the combining map ---------------------------------------------------


def _run_buffer(
    tmp: Path,
    use: ModuleType | None,
    pairs: list[Any],
    reduce_tasks: int,
    capacity: int,
    partitioner: partitioning.Partitioner,
) -> tuple[dict[str, int], list[bytes]]:
    """The runs a MapBuffer makes of ``pairs`` and its stats (but for how often it
    spilled: the arena counts 32 bytes per record, the lists 170)."""
    saved = native.core
    native.core = use
    try:
        buffer = mapbuffer.MapBuffer(reduce_tasks, partitioner, capacity, tmp / "scratch", None)
        assert (buffer.arena is not None) == (use is not None)
        buffer.add(iter(pairs))
        buffer.finish(tmp / "out")
    finally:
        native.core = saved
    files = [(tmp / "out" / f"part-{i:05d}.run").read_bytes() for i in range(reduce_tasks)]
    stats = {k: v for k, v in buffer.stats.items() if k not in ("spills", "spilled_records")}
    return stats, files


@SETTINGS
@given(
    st.lists(st.tuples(keys, values), max_size=120),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=200, max_value=20_000),
    st.booleans(),
)
def test_the_sort_buffer_makes_the_runs_of_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
    pairs: list[tuple[Any, Any]],
    reduce_tasks: int,
    capacity: int,
    by_range: bool,
) -> None:
    if by_range:
        sample = sorted(records.encode_key(k) for k, _ in pairs)
        partitioner = partitioning.make_partitioner(
            reduce_tasks, partitioning.boundaries_from_sample(sample, reduce_tasks)
        )
    else:
        partitioner = partitioning.hash_partitioner(reduce_tasks)
    if isinstance(partitioner.spec, list):
        reduce_tasks = len(partitioner.spec) + 1
    outcomes = [
        _outcome(
            _run_buffer,
            tmp_path_factory.mktemp("buffer"),
            use,
            pairs,
            reduce_tasks,
            room,
            partitioner,
        )
        for use, room in ((None, capacity), (core(), capacity), (core(), 2**40))
    ]
    assert outcomes[1] == outcomes[0]  # spilled or not, the same runs
    assert outcomes[2] == outcomes[0]  # never spilled


@pytest.mark.parametrize("reduce_tasks", [1, 3])
@pytest.mark.parametrize("capacity", [50_000, 2**40])
def test_the_sort_buffer_frames_large_runs_as_the_reference(
    tmp_path: Path, reduce_tasks: int, capacity: int
) -> None:
    """Thousands of records, some large: frames of many groups, halved groups, spills."""
    rng = random.Random(16)
    pairs = [
        (f"k{rng.randrange(500)}", "v" * rng.choice([1, 10, 3000]) if i % 7 else i)
        for i in range(5000)
    ]
    partitioner = partitioning.hash_partitioner(reduce_tasks)
    pure = _run_buffer(tmp_path / "pure", None, pairs, reduce_tasks, capacity, partitioner)
    fast = _run_buffer(tmp_path / "native", core(), pairs, reduce_tasks, capacity, partitioner)
    assert fast == pure


def test_the_sort_buffer_raises_as_the_reference(tmp_path: Path) -> None:
    for bad in ([("k", object())], [(["list key"], 1)], [("a", 1, 2)], [7]):
        outcomes = []
        for use in (None, core()):
            saved, native.core = native.core, use
            try:
                buffer = mapbuffer.MapBuffer(
                    2, partitioning.hash_partitioner(2), 10**6, tmp_path, None
                )
                outcomes.append(_outcome(buffer.add, iter(bad)))
            finally:
                native.core = saved
        assert outcomes[0] == outcomes[1], bad
        assert outcomes[0][0] == "raised"


def _sum_or_keep(key: Any, values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """A combiner that sums ints and keeps other values (so some keys never shrink)."""
    held = list(values)
    ints = [v for v in held if type(v) is int]
    if ints:
        yield key, sum(ints)
    for v in held:
        if type(v) is not int:
            yield key, v


class _Spills:
    def __init__(self, table: combinetable.CombineTable) -> None:
        self.table = table
        self.seen: list[tuple[int, int, list[list[runs.Record]]]] = []

    def __call__(self) -> None:
        size, count = self.table.size, self.table.records
        self.seen.append((size, count, self.table.drain(3, partitioning.hash_partitioner(3))))


def _run_table(use: ModuleType | None, pairs: list[Any], capacity: int, fold_at: int) -> Any:
    saved, saved_fold = native.core, combinetable.FOLD_AT
    native.core, combinetable.FOLD_AT = use, fold_at
    try:
        stats = {"combine_input_records": 0, "combine_output_records": 0}
        table = combinetable.CombineTable(_sum_or_keep, stats)
        spills = _Spills(table)
        table.add(iter(pairs), capacity, spills, 7, lambda: None)
        spills()
        return stats, spills.seen, table.records, table.packed
    finally:
        native.core, combinetable.FOLD_AT = saved, saved_fold


small_keys = st.one_of(
    st.sampled_from(["a", "b", "é", "\udcff", 1, 2, b"x", 1.0, True, None, ("t", 1)]), keys
)


@SETTINGS
@given(
    st.lists(st.tuples(small_keys, st.one_of(st.integers(-5, 5), values)), max_size=200),
    st.integers(min_value=500, max_value=40_000),
    st.sampled_from([2, 3, 8, 64]),
)
def test_the_combining_map_fills_as_the_reference(
    pairs: list[tuple[Any, Any]], capacity: int, fold_at: int
) -> None:
    fast = _outcome(_run_table, core(), pairs, capacity, fold_at)
    assert fast == _outcome(_run_table, None, pairs, capacity, fold_at)


class _Text(str):
    """A str subclass: sized by sys.getsizeof itself, not the exact-type fast path."""


@SETTINGS
@given(
    st.lists(st.one_of(values, st.text().map(_Text), st.integers().map(bool)), max_size=30),
    st.lists(st.integers(0, 29), max_size=30),
)
def test_the_cost_of_held_values_is_the_references(held: list[Any], repeats: list[int]) -> None:
    for at in repeats:  # some values repeated as the very same object
        if at < len(held):
            held.insert(at, held[at])
    saved = native.core
    try:
        native.core = None
        reference = combinetable._cost(held)
    finally:
        native.core = saved
    assert combinetable._cost(held) == reference


def _drop_odd_keys(key: Any, values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """A combiner that keeps nothing of some keys (their lists become empty)."""
    held = list(values)
    if len(key) % 2 == 0:
        yield key, held[-1]


def test_a_key_whose_combiner_kept_nothing_takes_values_again_as_the_reference() -> None:
    one = "".join(["o", "ne"])
    pairs = [(k, one) for _ in range(50) for k in ("ab", "abc", "abcd", "abcde")]
    outcomes = []
    for use in (core(), None):
        saved, saved_fold = native.core, combinetable.FOLD_AT
        native.core, combinetable.FOLD_AT = use, 4
        try:
            stats = {"combine_input_records": 0, "combine_output_records": 0}
            table = combinetable.CombineTable(_drop_odd_keys, stats)
            table.add(iter(pairs), 1 << 30, lambda: None, 7, lambda: None)
            outcomes.append((table.size, stats, table.drain(2, partitioning.hash_partitioner(2))))
        finally:
            native.core, combinetable.FOLD_AT = saved, saved_fold
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1]["combine_output_records"] > 0


def test_a_value_object_yielded_again_and_again_fills_as_the_reference() -> None:
    path = "".join(["books/", "part-3.txt"])  # one object, as an index yields its path
    counted = [1, 2]
    pairs: list[Any] = []
    for i in range(3_000):
        pairs += [(f"w{i % 97}", path), (f"n{i % 13}", counted)]
        pairs.append((f"w{i % 89}", "".join(["x", "y"])))  # equal strs, new objects
    for fold_at in (8, 64):
        fast = _outcome(_run_table, core(), pairs, 20_000, fold_at)
        assert fast == _outcome(_run_table, None, pairs, 20_000, fold_at)
        assert fast[0] == "ok" and len(fast[1][1]) > 1  # it spilled, at the same sizes


# --- frames ---------------------------------------------------------------------------------

record_lists = st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), max_size=40)


@SETTINGS
@given(record_lists, st.data())
def test_frames_equal_the_reference(group: list[runs.Record], data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(group)))
    stop = data.draw(st.integers(start, len(group)))
    assert core().frame(group, start, stop) == runs.frame(group, start, stop)
    assert core().records_size(group, start, stop) == runs.records_size(group, start, stop)
    payload = runs.frame(group, start, stop)[4:]
    assert core().decode_batch(payload) == runs.parse_batch(payload) == group[start:stop]


@SETTINGS
@given(record_lists, st.sampled_from([16, 100, 4096, runs.BATCH_BYTES]))
def test_encoded_runs_equal_the_reference(group: list[runs.Record], batch: int) -> None:
    saved = native.core
    try:
        native.core = None
        pure = list(runs.encode_frames(group, batch))
        native.core = core()
        fast = list(runs.encode_frames(group, batch))
    finally:
        native.core = saved
    assert fast == pure


@pytest.mark.parametrize("odd", [(bytearray(b"k"), b"v"), ("k", b"v"), (b"k",), b"kv"])
def test_records_that_are_not_bytes_pairs_take_the_reference(odd: Any) -> None:
    group = [(b"a", b"b"), odd]
    assert core().frame(group, 0, 2) is None
    assert core().records_size(group, 0, 2) is None
    outcomes = []
    for use in (None, core()):
        saved, native.core = native.core, use
        try:
            outcomes.append(_outcome(lambda: list(runs.encode_frames(group))))
        finally:
            native.core = saved
    assert outcomes[0] == outcomes[1]


@SETTINGS
@given(st.binary(max_size=60))
def test_decoding_any_bytes_agrees_with_protobuf(payload: bytes) -> None:
    parsed = core().decode_batch(payload)
    reference = _outcome(runs.parse_batch, payload)
    if parsed is not None:  # native accepts only plain batches, which protobuf accepts alike
        assert reference == ("ok", parsed)
    saved, native.core = native.core, core()
    try:
        assert _outcome(runs.decode_batch, payload) == reference
    finally:
        native.core = saved


@pytest.mark.parametrize(
    "data",
    [
        b"\xca\x3f\xc0\x00\x00",  # float32
        b"\xca\x7f\xc0\x00\x00",  # float32 NaN
        b"\xd9\x03abc",
        b"\xda\x00\x01z",
        b"\xdb\x00\x00\x00\x01z",
        b"\xa2\xed\xb3",  # a truncated surrogate: msgpack's error
        b"\xa3\xed\xb3\xbf",  # a lone surrogate (surrogatepass)
        b"\xc4\x02xy",
        b"\xc5\x00\x00",
        b"\xc6\x00\x00\x00\x00",
        b"\xd0\x80",
        b"\xd1\xff\x00",
        b"\xd2\x80\x00\x00\x00",
        b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
        b"\xcc\xff",
        b"\xcd\x01\x00",
        b"\xce\xff\xff\xff\xff",
        b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\xc0\xc0",  # extra data
        b"\x91\x01",  # an array: msgpack decodes it
        b"",
    ],
)
def test_value_decoding_of_each_encoding_agrees_with_msgpack(data: bytes) -> None:
    fast = _with(core(), _decode, data)
    reference = _outcome(records.decode_value, data)
    assert repr(fast) == repr(reference)


# --- the reducer's loop ---------------------------------------------------------------------


class _Reducer:
    """A reduce of one of several shapes (the ones a user may write)."""

    def __init__(self, shape: str) -> None:
        self.shape = shape

    def reduce(self, key: Any, values: Iterator[Any]) -> Iterable[Any]:
        if self.shape == "each":
            return ((key, v) for v in values)
        if self.shape == "count":
            return [(key, sum(1 for _ in values))]
        if self.shape == "first":
            return [[key, next(values)]]  # lists, not tuples; the rest left unread
        if self.shape == "none":
            return ()
        if self.shape == "raise" and key == "boom":
            raise ValueError("boom")
        return [(key, list(values)), (None, 1)]


@SETTINGS
@given(
    st.lists(
        st.tuples(st.one_of(st.sampled_from(["a", "b", "boom", 3, ("t", 1)]), keys), values),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=3),
    st.sampled_from(["each", "count", "first", "none", "raise", "list"]),
    st.sampled_from(["text", "records"]),
)
def test_the_reduce_loop_equals_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
    pairs: list[Any],
    sources: int,
    shape: str,
    output_format: str,
) -> None:
    encoded = []
    for key, value in pairs:
        outcome = _outcome(records.encode_value, value)
        assume(outcome[0] == "ok")
        encoded.append((records.encode_key(key), outcome[1]))
    tmp = tmp_path_factory.mktemp("reduce")
    results = []
    for use in (None, core()):
        files = []
        for index in range(sources):
            path = tmp / f"run-{use is None}-{index}.run"
            with runs.RunWriter(path) as writer:
                writer.write(sorted(encoded[index::sources], key=lambda r: r[0]))
            files.append(path)
        out = tmp / f"part-{use is None}"
        saved, native.core = native.core, use
        try:
            outcome = _outcome(
                functools.partial(reducetask.run_reduce, output_format=output_format),
                _Reducer(shape),
                list(files),
                str(out),
                tmp / "scratch",
            )
        finally:
            native.core = saved
        if outcome[0] == "ok":
            outcome = ("ok", outcome[1].counters, out.read_bytes())
        results.append(outcome)
    assert results[1] == results[0]


@SETTINGS
@given(st.lists(st.tuples(st.binary(max_size=12), st.integers(0, 3)), max_size=60))
def test_sorting_records_equals_a_stable_sort(pairs: list[tuple[bytes, int]]) -> None:
    group = [(k, str(i).encode()) for i, (k, _) in enumerate(pairs)]  # values mark the order
    expected = sorted(group, key=lambda r: r[0])
    assert core().sort_records(group) is True
    assert group == expected


def test_records_of_other_shapes_are_left_to_list_sort() -> None:
    group: list[Any] = [(b"b", b""), ("a", b"")]
    assert core().sort_records(group) is False
    assert group == [(b"b", b""), ("a", b"")]


@SETTINGS
@given(
    st.lists(
        st.lists(st.tuples(st.binary(max_size=2), st.binary(max_size=3)), max_size=40),
        min_size=2,
        max_size=6,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_the_heap_merge_equals_the_batch_merge(runs_of: list[list[Any]], batch: int) -> None:
    """Runs of few distinct keys (many ties), cut into batches of ``batch`` records (and
    an empty one): every record once, by key, ties in run order then in-run order."""
    ordered = [sorted(r, key=lambda rec: rec[0]) for r in runs_of]
    expected = [
        rec
        for _, _, _, rec in sorted(
            (rec[0], run, pos, rec)
            for run, recs in enumerate(ordered)
            for pos, rec in enumerate(recs)
        )
    ]

    def batches() -> list[Iterator[list[runs.Record]]]:
        return [iter([r[i : i + batch] for i in range(0, len(r), batch)] + [[]]) for r in ordered]

    assert [rec for b in core().Merger(batches()) for rec in b] == expected
    assert [rec for b in runs._merged_batches(batches()) for rec in b] == expected
