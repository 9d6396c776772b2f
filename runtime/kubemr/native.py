"""The native core: :mod:`kubemr._native`, a C extension of the map and shuffle path's hot
loops, when it was built and is not switched off.

The pure-Python code stays the definition: every native function has a Python reference
(the partitioners, the sort buffer's and the combining map's loops, the frame codec) and
property tests check that both agree on random inputs. The extension is built by
``pip install`` (``make venv``) where a C compiler exists; where it is missing, kubemr
runs the pure path. ``KUBEMR_NATIVE=0`` in the environment forces the pure path (read at
import: set it before a process starts, as ``kubemr run`` passes its environment on to
the master and workers).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

ENV = "KUBEMR_NATIVE"
"""Environment variable: ``0`` forces the pure-Python path; anything else (or unset) uses
the native core when it was built."""


def load(environ: dict[str, str] | os._Environ[str] = os.environ) -> ModuleType | None:
    """The native core, or None when it is switched off or was not built."""
    if environ.get(ENV, "1").strip() == "0":
        return None
    try:
        return importlib.import_module("kubemr._native")  # absent without a C compiler
    except ImportError:
        return None


def built() -> bool:
    """Whether the extension was built (whatever the switch says)."""
    return load({}) is not None


core = load()
"""The module in use, or None (the pure-Python path)."""
