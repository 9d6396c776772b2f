"""Type stubs of the C extension (runtime/kubemr/_native.c); see kubemr.native."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

def crc32(data: bytes, /) -> int: ...
def partition(key: bytes, spec: int | list[bytes], /) -> int: ...
def partitions(keys: list[bytes], spec: int | list[bytes], /) -> list[int]: ...
def encode_key(fallback: Callable[[object], bytes], key: object, /) -> bytes: ...
def encode_value(
    fallback: Callable[[object], bytes], none_value: bytes, value: object, /
) -> bytes: ...
def decode_value(fallback: Callable[[bytes], Any], data: bytes, /) -> Any: ...
def combine_fill(
    pairs: Iterator[tuple[Any, Any]],
    strs: dict[Any, list[Any]],
    ints: dict[Any, list[Any]],
    bytes_: dict[Any, list[Any]],
    encoded: dict[Any, list[Any]],
    fold_at: dict[Any, int],
    costs: dict[type, int],
    sizeof: Callable[[object], int],
    encode_key: Callable[[object], bytes],
    encode_value: Callable[[object], bytes],
    packed: Callable[[bytes], Any],
    due: Callable[[dict[Any, list[Any]], Any, list[Any]], bool],
    fold: Callable[[dict[Any, list[Any]], Any, list[Any]], int],
    value_overhead: int,
    key_overhead: int,
    fold_count: int,
    size: int,
    capacity: int,
    limit: int,
    owner: object,
    /,
) -> tuple[int, int, bool]: ...
def values_cost(
    values: list[Any],
    costs: dict[type, int],
    sizeof: Callable[[object], int],
    value_overhead: int,
    /,
) -> int: ...
def records_size(records: list[tuple[bytes, bytes]], start: int, stop: int, /) -> int | None: ...
def frame(records: list[tuple[bytes, bytes]], start: int, stop: int, /) -> bytes | None: ...
def decode_batch(payload: bytes, /) -> list[tuple[bytes, bytes]] | None: ...
def sort_records(records: list[tuple[bytes, bytes]], /) -> bool: ...

class Grouper:
    def __init__(
        self,
        records: Iterable[tuple[bytes, bytes]],
        decode_key: Callable[[bytes], Any],
        decode_value: Callable[[bytes], Any],
        /,
    ) -> None: ...
    def run(
        self,
        reduce: Callable[[Any, Iterator[Any]], Iterable[Any]],
        render: Callable[..., Any],
        text: bool,
        lines: list[Any],
        max_groups: int,
        max_lines: int,
        /,
    ) -> int: ...

ENTRY_BYTES: int

class SortBuffer:
    def __init__(self, reduce_tasks: int, /) -> None: ...
    def fill(
        self,
        pairs: Iterator[tuple[Any, Any]],
        spec: int | list[bytes],
        size: int,
        capacity: int,
        limit: int,
        encode_key: Callable[[object], bytes],
        encode_value: Callable[[object], bytes],
        none_value: bytes,
        /,
    ) -> tuple[int, int, int, bool]: ...
    def sort(self) -> None: ...
    def frames(
        self,
        partition: int,
        start: int,
        take: int,
        batch_bytes: int,
        max_group: int,
        max_bytes: int,
        /,
    ) -> tuple[list[tuple[bytes, int]], int, int]: ...
    def clear(self) -> None: ...
    def records(self) -> int: ...

class Merger:
    def __init__(self, batches: list[Iterator[list[tuple[bytes, bytes]]]], /) -> None: ...
    def __iter__(self) -> Iterator[list[tuple[bytes, bytes]]]: ...
    def __next__(self) -> list[tuple[bytes, bytes]]: ...
