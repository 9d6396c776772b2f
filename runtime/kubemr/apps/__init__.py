"""The app contract and app loading.

An app is a class. kubemr instantiates it once per worker with ``spec.app.args`` as
keyword arguments, then calls:

- ``map(self, key, line)``: ``key`` is the input file's path, ``line`` one line without
  its line ending; yields ``(key, value)`` pairs.
- ``reduce(self, key, values)``: once per key, with an iterator over all its values;
  yields ``(key, value)`` pairs, each written as one output line ``key<TAB>value``.
- ``combine(self, key, values)`` (optional): shaped like reduce, run on map output
  before the shuffle. It may run zero, one or several times per key.

Optional per-task hooks (Hadoop's setup/cleanup, mrjob's ``mapper_init``/``mapper_final``):
``map_setup(self)`` before a map task's first record and ``map_teardown(self)`` after its
last, which may yield pairs (in-mapper combining: aggregate in memory across the whole
split, emit at the end); ``reduce_setup(self)`` and ``reduce_teardown(self)`` likewise
around a reduce task, whose teardown pairs are written after the last key's.

During a task the engine sets ``self.counters`` (:class:`Counters`): the app increments
named counters from map, combine, reduce and the hooks, and the job's totals count each
task's committed attempt once.

An app may set ``partitioner = "range"`` to prefer the sampled range partitioner.
Keys are str, int, float, bool, None, bytes or tuples of those (ordered element by
element); values also lists and dicts of those.

Built-ins may also define ``map_split(self, key, blocks, combine)``, a fast path that
receives the split's raw line blocks; its output must equal the per-line definition.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kubemr import mrjobs
from kubemr.spec import AppSpec

Pair = tuple[Any, Any]


@runtime_checkable
class App(Protocol):
    """What every app provides."""

    def map(self, key: str, line: str) -> Iterable[Pair]: ...

    def reduce(self, key: Any, values: Iterator[Any]) -> Iterable[Pair]: ...


class AppError(ValueError):
    """An app that cannot be found, imported or constructed."""


APP_COUNTER_PREFIX = "app:"
"""Task reports carry the app's counters among the engine's, named ``app:<name>``."""
MAX_COUNTERS = 100
"""Most distinct counter names an app may use in one task (and the job keeps), which
bounds the metric's cardinality (Hadoop's limit is 120)."""
COUNTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
"""A counter name: a letter, then up to 63 letters, digits, ``_``, ``.`` or ``-``."""


class CounterError(ValueError):
    """A counter name or amount kubemr cannot keep."""


class Counters:
    """The named counters of one task attempt: ``self.counters.increment("bad_dates")``."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def increment(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` (an int, default 1) to the counter ``name``."""
        if name not in self.values:
            if not isinstance(name, str) or not COUNTER_NAME.match(name):
                raise CounterError(
                    f"counter name {name!r}: must match {COUNTER_NAME.pattern} "
                    "(a letter, then letters, digits, '_', '.', '-')"
                )
            if len(self.values) >= MAX_COUNTERS:
                raise CounterError(f"counter {name!r}: a task may use at most {MAX_COUNTERS}")
            self.values[name] = 0
        if type(amount) is not int:
            raise CounterError(f"counter {name!r}: amount must be an int, not {amount!r}")
        self.values[name] += amount


def start_task(app: App) -> Counters:
    """Give ``app`` fresh counters for a task attempt (``app.counters``); return them."""
    counters = Counters()
    with contextlib.suppress(AttributeError):  # __slots__ without "counters": no counting
        app.counters = counters  # type: ignore[attr-defined]
    return counters


def call_hook(app: App, name: str) -> list[Pair]:
    """Call the optional hook ``name`` (``map_setup``, ``map_teardown``, ...) if the app
    defines it; return the pairs it yields or returns (none for a plain function)."""
    hook = getattr(app, name, None)
    if not callable(hook):
        return []
    result = hook()
    return [] if result is None else list(result)


BUILTINS = {
    "wordcount": "kubemr.apps.wordcount:WordCount",
    "grep": "kubemr.apps.grep:Grep",
    "indexer": "kubemr.apps.indexer:Indexer",
    "sort": "kubemr.apps.sort:Sort",
}


def _import_target(reference: str, search: Iterable[Path]) -> object:
    module_name, _, attr = reference.partition(":")
    if module_name.endswith(".py"):
        candidates = [Path(module_name)] + [Path(d) / module_name for d in search]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise AppError(f"spec.app.module: no such file {module_name!r}")
        name = f"kubemr_userapp_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise AppError(f"spec.app.module: cannot load {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            extra = [str(d) for d in search if str(d) not in sys.path]
            sys.path.extend(extra)  # appended, so the standard library always wins
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                raise AppError(f"spec.app.module: cannot import {module_name!r}: {exc}") from None
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppError(f"spec.app.module: {module_name!r} has no attribute {attr!r}") from None
    return target


def target_of(app: AppSpec, search: Iterable[Path] = ()) -> object:
    """The class (or callable) a spec's app names, imported; errors name ``spec.app``."""
    reference = BUILTINS[app.builtin] if app.builtin else app.module or ""
    try:
        target = _import_target(reference, list(search))
    except AppError:
        raise
    except Exception as exc:
        raise AppError(f"spec.app.module: importing {reference!r} failed: {exc!r}") from exc
    if not callable(target):
        raise AppError(f"spec.app: {reference!r} is not a class")
    return target


def load_app(app: AppSpec, search: Iterable[Path] = ()) -> App:
    """Import and construct the app a spec names; errors name ``spec.app``. An mrjob job
    (an ``MRJob`` subclass) is adapted (:mod:`kubemr.mrjobs`)."""
    target = target_of(app, search)
    assert callable(target)
    if mrjobs.is_mrjob(target):
        assert isinstance(target, type)
        try:
            return mrjobs.adapt(target, app.args)
        except mrjobs.MRJobError as exc:
            raise AppError(str(exc)) from None
        except Exception as exc:
            raise AppError(f"spec.app: constructing {app.ref} failed: {exc!r}") from exc
    try:
        instance = target(**app.args)
    except TypeError as exc:
        raise AppError(
            f"spec.app.args: {app.ref} rejected its arguments {app.args}: {exc}"
        ) from None
    except Exception as exc:
        raise AppError(f"spec.app: constructing {app.ref} failed: {exc!r}") from exc
    missing = [m for m in ("map", "reduce") if not callable(getattr(instance, m, None))]
    if missing:
        raise AppError(f"spec.app: {app.ref} has no {' or '.join(missing)} method")
    return instance  # type: ignore[no-any-return]


def has_combiner(app: App) -> bool:
    """Whether the app defines ``combine``."""
    return callable(getattr(app, "combine", None))


def preferred_partitioner(app: App) -> str:
    """The app's partitioner preference: ``hash`` unless it says ``range``."""
    value = getattr(app, "partitioner", "hash")
    return "range" if value == "range" else "hash"


def describe(app: App) -> str:
    """A short name for messages."""
    cls = type(app)
    return f"{cls.__module__}.{cls.__qualname__}" if not inspect.isbuiltin(cls) else repr(app)
