"""Kubernetes-style quantities (``64Mi``, ``1G``) and Go-style durations (``10s``, ``1m30s``).

The manifest is a Kubernetes custom resource, so sizes and times are written the way
Kubernetes users write them. These parsers are pure and raise ``ValueError`` with a
message that quotes the bad text; the spec model turns that into a field error.
"""

import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

QUANTITY_PATTERN = r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
"""The regular expression the CRD schema uses for byte quantities (kept beside the parser)."""

DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"
"""The regular expression the CRD schema uses for durations."""


def parse_quantity(value: object) -> int:
    """Return the number of bytes in ``value`` (an int, or a string such as ``"64Mi"``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 64Mi, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 64Mi, got {value!r}")
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a quantity (examples: 64Mi, 1Gi, 500k, 1048576)")
    number, suffix = match.group(1), match.group(2) or ""
    scale = _BINARY.get(suffix) or _DECIMAL[suffix]
    return int(float(number) * scale) if "." in number else int(number) * scale


def format_quantity(size: int) -> str:
    """Render ``size`` bytes in the largest binary unit that divides it exactly."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        scale = _BINARY[suffix]
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)


def parse_duration(value: object) -> float:
    """Return seconds for ``value``: a number of seconds or a string such as ``"1m30s"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10s, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if not isinstance(value, str) or not re.fullmatch(DURATION_PATTERN, value.strip()):
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 10s, 1m30s)")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """Render ``seconds`` the way the manifest writes it (``10s``, ``500ms``)."""
    if seconds < 1 and seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"
