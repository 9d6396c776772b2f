"""How keys and values become bytes, and how output lines are written.

Keys are encoded so that comparing the encoded bytes orders keys the way users expect:
strings by code point (exactly Python's ``str`` order), integers and floats numerically,
bytes lexicographically, tuples element by element (a shorter tuple that is a prefix of
a longer one first). Keys of different types order by type: None < bool < int < float <
str < bytes < tuple. A tuple is its elements' encodings, each with its zero bytes
escaped (``00`` -> ``00 FF``) and followed by the terminator ``00 01``: escaping keeps
each element's order, and the terminator sorts below any continuation, so byte order is
element-by-element order (the FoundationDB tuple layer's scheme). Sorting, merging and
range partitioning all work on these bytes, and hash partitioning takes crc32 of them (of
a tuple's first element only), so it is stable across processes.

Values are msgpack: str, int, float, bool, None, bytes and lists/dicts of those.

Text that was not valid UTF-8 in the input is carried as lone surrogates
(``surrogateescape``) and written back as the original bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import msgpack

from kubemr import native

_NONE, _FALSE, _TRUE, _INT, _FLOAT, _STR, _BYTES, _TUPLE = (
    b"\x00",
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x05",
    b"\x06",
    b"\x07",
)
TUPLE_TAG = _TUPLE[0]
"""The first byte of every encoded tuple key."""
_END = b"\x00\x01"
STR_PREFIX = _STR
"""The first byte of every encoded ``str`` key (the rest is its UTF-8)."""
STR_TAG = _STR[0]
"""The same, as an int."""
_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63


class RecordError(TypeError):
    """A key or value of a type kubemr cannot carry."""


def encode_key(key: object) -> bytes:
    """Encode ``key`` so that byte order is key order."""
    if type(key) is str:
        return _STR + key.encode("utf-8", "surrogatepass")
    if key is None:
        return _NONE
    if key is True:
        return _TRUE
    if key is False:
        return _FALSE
    if type(key) is int:
        return _INT + _encode_int(key)
    if type(key) is float:
        bits = _U64.unpack(_DOUBLE.pack(key))[0]
        bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & _SIGN else bits | _SIGN
        return _FLOAT + _U64.pack(bits)
    if isinstance(key, bytes | bytearray):
        return _BYTES + bytes(key)
    if type(key) is tuple:
        return _TUPLE + b"".join(encode_key(e).replace(b"\x00", b"\x00\xff") + _END for e in key)
    raise RecordError(
        f"keys must be str, int, float, bool, None, bytes or tuples of those, "
        f"not {type(key).__name__}"
    )


def _tuple_elements(body: bytes) -> list[bytes]:
    """The encoded elements of a tuple key's body (unescaped)."""
    elements, start = [], 0
    while start < len(body):
        end = body.find(_END, start)  # escaped data has no 00 01: every 00 is 00 FF
        if end == -1:
            raise RecordError("corrupt key: unterminated tuple element")
        elements.append(body[start:end].replace(b"\x00\xff", b"\x00"))
        start = end + 2
    return elements


def tuple_head(data: bytes) -> bytes:
    """The encoded first element of a tuple key (escaped, with its terminator), so that
    every key with that first element starts with ``_TUPLE + head``; other keys whole."""
    if not data or data[0] != TUPLE_TAG:
        return data
    end = data.find(_END, 1)
    return data if end == -1 else data[: end + 2]


def _encode_int(n: int) -> bytes:
    # Length-prefixed magnitude; negative numbers are complemented so that they sort first.
    magnitude = abs(n).to_bytes((abs(n).bit_length() + 7) // 8 or 1, "big")
    if n >= 0:
        return bytes([0x80 + len(magnitude)]) + magnitude
    inverted = bytes(255 - b for b in magnitude)
    return bytes([0x7F - len(magnitude)]) + inverted


def decode_key(data: bytes) -> Any:
    """Invert :func:`encode_key`."""
    tag, body = data[:1], data[1:]
    if tag == _STR:
        return body.decode("utf-8", "surrogatepass")
    if tag == _INT:
        head = body[0]
        if head >= 0x80:
            return int.from_bytes(body[1:], "big")
        return -int.from_bytes(bytes(255 - b for b in body[1:]), "big")
    if tag == _FLOAT:
        bits = _U64.unpack(body)[0]
        bits = bits ^ _SIGN if bits & _SIGN else bits ^ 0xFFFFFFFFFFFFFFFF
        return _DOUBLE.unpack(_U64.pack(bits))[0]
    if tag == _NONE:
        return None
    if tag == _TRUE:
        return True
    if tag == _FALSE:
        return False
    if tag == _BYTES:
        return bytes(body)
    if tag == _TUPLE:
        return tuple(decode_key(e) for e in _tuple_elements(body))
    raise RecordError(f"corrupt key: unknown type tag {tag!r}")


def str_key_bytes(words: list[str]) -> list[bytes]:
    """Encode many ``str`` keys at once (the hot path of text apps)."""
    return [_STR + w.encode("utf-8", "surrogatepass") for w in words]


_packer = msgpack.Packer(unicode_errors="surrogatepass", use_bin_type=True)
NONE_VALUE: bytes = _packer.pack(None)
"""The encoded ``None`` value (the value of a key-only record, such as sort's)."""


def encode_value(value: object) -> bytes:
    """Encode a value (str, int, float, bool, None, bytes, lists/dicts of those)."""
    try:
        return _packer.pack(value)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise RecordError(f"cannot carry value of type {type(value).__name__}: {exc}") from None


decode_value: Callable[[bytes], Any] = partial(
    msgpack.unpackb, raw=False, unicode_errors="surrogatepass", strict_map_key=False
)
"""Invert :func:`encode_value` (a C-level partial: no Python frame per value)."""


def value_encoder() -> Callable[[object], bytes]:
    """:func:`encode_value`, natively for None, int and str when the native core is in
    use (:mod:`kubemr.native`; every other value through :func:`encode_value`)."""
    core = native.core
    if core is None:
        return encode_value
    return partial(core.encode_value, encode_value, NONE_VALUE)


def value_decoder() -> Callable[[bytes], Any]:
    """:func:`decode_value`, natively for nil, bools, ints, floats, str and bin when the
    native core is in use (anything else through :func:`decode_value`)."""
    core = native.core
    if core is None:
        return decode_value
    return partial(core.decode_value, decode_value)


def format_field(item: object) -> str:
    """Render a key or value in an output line: str as is, bytes as their text, else JSON."""
    if type(item) is str:
        return item
    if type(item) is int:
        return str(item)
    if isinstance(item, bytes):
        return item.decode("utf-8", "surrogateescape")
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def format_line(key: object, value: object) -> str:
    """One output line, without its newline: ``key<TAB>value``, or the key alone if the
    value is None."""
    if value is None:
        return key if type(key) is str else format_field(key)
    return f"{format_field(key)}\t{format_field(value)}"
