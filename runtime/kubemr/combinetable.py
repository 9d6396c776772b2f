"""The map side's combining hash map: values merged per key as they arrive.

When a job has a combiner, map output does not need to be encoded, partitioned and
sorted record by record: it goes into a hash map from key to the list of its values
(Spark's append-only map with map-side combine; the in-mapper combining pattern). When a
key has gathered ``FOLD_AT`` values, the combiner folds them into what it yields, so the
map's memory grows with the distinct keys, not with the records. Only when the buffer is
full (or the map ends) is each key's list combined once more, and the keys encoded,
partitioned and sorted, in one batch per spill.

Keys are held by exact type, so keys that Python finds equal but kubemr encodes
differently (``1``, ``1.0``, ``True``; ``0.0`` and ``-0.0``) never merge: ``str``,
``int`` and ``bytes`` keys are held as they are, every other key by its encoded bytes.
Values that Python could change after ``map`` yields them (lists, dicts, anything not a
scalar) are encoded on arrival, so what is buffered is what was yielded.

Memory is estimated with ``sys.getsizeof`` of keys and values plus a per-entry overhead,
the same bound the sort buffer keeps (:mod:`kubemr.mapbuffer`). A value that is the very
object its key's list ended with (a count's ``1``, the path an index yields for every
word of a file) costs only its list slot: the object is held once. A fold subtracts what
its values cost by the same rule (:func:`_cost`), so the estimate does not drift.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubemr import native, records, runs
from kubemr.partitioning import Partitioner

Combiner = Callable[[Any, Iterator[Any]], Iterable[tuple[Any, Any]]]
Record = tuple[bytes, bytes]

FOLD_AT = 64
"""Values a key gathers before the combiner folds them."""
KEY_OVERHEAD = 200
"""Estimated bytes per distinct key beyond the key object: its hash-table entry and
slack (about 100), the empty list of its values (56) and the list's over-allocation."""
VALUE_OVERHEAD = 8
"""Bytes per buffered value beyond the value object: its list slot."""
_VALUE_COSTS: dict[type, int] = {
    int: 40 + VALUE_OVERHEAD,  # sys.getsizeof of ints below 2**60, at most 36
    float: 24 + VALUE_OVERHEAD,
    bool: 28 + VALUE_OVERHEAD,
    type(None): 16 + VALUE_OVERHEAD,
    str: 0,
    bytes: 0,
}
"""Estimated bytes of a buffered value by type; 0: measured (``sys.getsizeof``). Values
of these types cannot change after they are yielded, so are held as they are; any other
is encoded on arrival."""
_AS_IS = (str, int, bytes)
"""Key types held as Python objects (their equality is their encoding's)."""


class Packed(bytes):
    """A value held encoded (it was a list, a dict, or any other mutable value)."""


def _unpacked(values: list[Any]) -> Iterator[Any]:
    decode = records.value_decoder()
    for value in values:
        yield decode(value) if type(value) is Packed else value


def _cost(values: list[Any]) -> int:
    """Estimated bytes of a key's held values, as :meth:`CombineTable.add` counted them:
    each value's cost by type (:data:`_VALUE_COSTS`, else ``sys.getsizeof`` plus its
    slot), or its slot alone when it is the same object as the value before it. By the
    native core when it is in use."""
    core = native.core
    if core is not None:
        return int(core.values_cost(values, _VALUE_COSTS, sys.getsizeof, VALUE_OVERHEAD))
    total, previous, costs, sizeof = 0, _NOTHING, _VALUE_COSTS, sys.getsizeof
    for value in values:
        if value is previous:
            total += VALUE_OVERHEAD
            continue
        previous = value
        total += costs.get(type(value), 0) or sizeof(value) + VALUE_OVERHEAD
    return total


_NOTHING = object()


def _packed(value: Any) -> Any:
    return value if type(value) in _VALUE_COSTS else Packed(records.encode_value(value))


class CombineTable:
    """Buffers map output of a job with a combiner, combining as values arrive."""

    def __init__(self, combiner: Combiner, stats: dict[str, int]) -> None:
        self.combiner = combiner
        self.stats = stats
        self.tables: dict[type, dict[Any, list[Any]]] = {t: {} for t in _AS_IS}
        self.encoded: dict[bytes, list[Any]] = {}
        """Keys of every other type, by their encoded bytes."""
        self.fold_at: dict[tuple[int, Any], int] = {}
        """Keys whose combiner did not shrink them below ``FOLD_AT``: when to fold next."""
        self.size = 0
        self.records = 0
        self.packed = False
        """Whether any value is held encoded (else values pass to the combiner as held)."""

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values()) + len(self.encoded)

    def add(
        self,
        pairs: Iterable[tuple[Any, Any]],
        capacity: int,
        spill: Callable[[], None],
        every: int,
        tick: Callable[[], None],
    ) -> None:
        """Take every pair, calling ``spill`` (which must :meth:`drain` the table)
        whenever the estimated size reaches ``capacity``, and ``tick`` every ``every``
        records."""
        if native.core is not None:
            self._add_native(iter(pairs), capacity, spill, every, tick, native.core)
            return
        tables, encoded, encode_key, encode_value = (
            self.tables,
            self.encoded,
            records.encode_key,
            records.encode_value,
        )
        strs = tables[str]
        costs, sizeof, fold_at = _VALUE_COSTS, sys.getsizeof, self.fold_at
        size, count = self.size, 0
        for key, value in pairs:
            if type(key) is str:
                table = strs
            else:
                table = tables.get(type(key))  # type: ignore[assignment]
                if table is None:
                    table, key = encoded, encode_key(key)  # noqa: PLW2901 (hot loop)
            cost = costs.get(type(value), -1)
            if cost <= 0:
                if cost < 0:
                    value = Packed(encode_value(value))  # noqa: PLW2901 (hot loop)
                    self.packed = True
                cost = sizeof(value) + VALUE_OVERHEAD
            values = table.get(key)
            if values is None:
                table[key] = [value]
                size += sizeof(key) + cost + KEY_OVERHEAD
            else:
                size += VALUE_OVERHEAD if values and value is values[-1] else cost
                values.append(value)
                if len(values) >= FOLD_AT and (not fold_at or self._due(table, key, values)):
                    size += self._fold(table, key, values)
            count += 1
            if size >= capacity:
                self.size, self.records, count = size, self.records + count, 0
                spill()
                size = self.size
            elif not count % every:
                self.size = size
                tick()
        self.size = size
        self.records += count

    def _add_native(
        self,
        pairs: Iterator[tuple[Any, Any]],
        capacity: int,
        spill: Callable[[], None],
        every: int,
        tick: Callable[[], None],
        core: Any,
    ) -> None:
        """:meth:`add`'s loop in the native core, ``every`` records at a time: the same
        table, the same folds and the same spills at the same records."""
        tables = self.tables
        more = True
        while more:
            self.size, count, more = core.combine_fill(
                pairs,
                tables[str],
                tables[int],
                tables[bytes],
                self.encoded,
                self.fold_at,
                _VALUE_COSTS,
                sys.getsizeof,
                records.encode_key,
                records.encode_value,
                Packed,
                self._due,
                self._fold,
                VALUE_OVERHEAD,
                KEY_OVERHEAD,
                FOLD_AT,
                self.size,
                capacity,
                every,
                self,
            )
            self.records += count
            if self.size >= capacity:
                spill()
            elif more:
                tick()

    def _due(self, table: dict[Any, list[Any]], key: Any, values: list[Any]) -> bool:
        return len(values) >= self.fold_at.get((id(table), key), 0)

    def _fold(self, table: dict[Any, list[Any]], key: Any, values: list[Any]) -> int:
        """Combine ``key``'s values in place; return the change in estimated size."""
        before = _cost(values)
        values[:] = self._combined(table, key, values)
        if len(values) > FOLD_AT // 2:
            self.fold_at[(id(table), key)] = 2 * len(values)
        return _cost(values) - before

    def _combined(self, table: dict[Any, list[Any]], key: Any, values: list[Any]) -> list[Any]:
        """The combiner's values for ``key`` (held form in, held form out)."""
        user_key = records.decode_key(key) if table is self.encoded else key
        out: list[Any] = []
        self.stats["combine_input_records"] += len(values)
        held = _unpacked(values) if self.packed else iter(values)
        for out_key, out_value in self.combiner(user_key, held):
            same = type(out_key) is type(user_key) and out_key == user_key
            if not same and records.encode_key(out_key) != records.encode_key(user_key):
                raise records.RecordError(
                    f"combine() must keep its key: got {out_key!r} for key {user_key!r}"
                )
            held_value = _packed(out_value)
            self.packed = self.packed or type(held_value) is Packed
            out.append(held_value)
        self.stats["combine_output_records"] += len(out)
        return out

    def drain(self, reduce_tasks: int, partition: Partitioner) -> list[list[Record]]:
        """Empty the table into one sorted list of encoded records per partition, each
        key's values combined once more (a key with one value passes as it is)."""
        parts: list[list[Record]] = [[] for _ in range(reduce_tasks)]
        encode_value = records.value_encoder()
        for table in [*self.tables.values(), self.encoded]:
            if table is self.encoded:
                encoded_keys: list[bytes] = list(table)
            elif table is self.tables[str]:
                encoded_keys = records.str_key_bytes(list(table))
            else:
                encoded_keys = [records.encode_key(k) for k in table]
            indexes = partition.many(encoded_keys)
            for key_bytes, index, (key, values) in zip(
                encoded_keys, indexes, table.items(), strict=True
            ):
                combined = self._combined(table, key, values) if len(values) > 1 else values
                part = parts[index]
                for value in combined:
                    part.append(
                        (key_bytes, bytes(value) if type(value) is Packed else encode_value(value))
                    )
            table.clear()
        for part in parts:
            runs.sort_records(part)
        self.fold_at.clear()
        self.size = 0
        return parts
