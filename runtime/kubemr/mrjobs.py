"""mrjob compatibility: an unmodified ``MRJob`` subclass runs as a kubemr app.

``spec.app.module`` may name an ``mrjob.job.MRJob`` subclass (mrjob is the optional
extra ``kubemr[mrjob]``). Each of its ``steps()`` (``MRStep``) becomes a kubemr step
(:mod:`kubemr.steps`): a step with a reducer gets the step's ``reduceTasks``, one without
is map-only. :class:`MRJobStep` is the app that runs one of them, as mrjob's own task
runner would:

- ``mapper``/``combiner``/``reducer`` and their ``*_init``/``*_final`` hooks (the init
  hooks may yield pairs too); a step without a mapper maps each pair to itself;
- the first step reads each input line with the job's ``INPUT_PROTOCOL`` (by default
  ``RawValueProtocol``: key None, the line as the value); every pair a step passes on
  goes through the job's ``INTERNAL_PROTOCOL`` (JSON by default) and back, so the next
  function sees what it would under mrjob (tuples as lists, dict keys as strings), and
  is carried between steps as kubemr records; the last step writes each pair as the
  line the job's ``OUTPUT_PROTOCOL`` makes;
- ``SORT_VALUES``: each key's values reach the reducer sorted by their encoding;
- ``increment_counter(group, counter)`` adds to the kubemr counter ``group.counter``
  (characters kubemr's counter names cannot hold become ``_``);
- ``configure_args``/passthrough options: ``spec.app.args`` become the job's command
  line, ``{name: value}`` as ``--name value`` (an empty value: ``--name`` alone).

Not supported (an app using them is refused with a message, or they have no effect):
``mapper_cmd``/``combiner_cmd``/``reducer_cmd``, ``*_pre_filter``, ``mapper_raw``,
``JarStep``/``SparkStep``/``SparkJarStep``, ``combiner_init``/``combiner_final`` (the step
runs without its combiner), runner options and ``jobconf``, ``HADOOP_INPUT_FORMAT``/
``HADOOP_OUTPUT_FORMAT``, and ``FILES``/``DIRS``/``ARCHIVES`` uploads (pass paths the
pods can read in ``spec.app.args`` instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kubemr.spec import AppSpec, StepSpec

STEP_ARG = "kubemr.mrjob.step"
"""The ``spec.app.args`` key that tells :class:`MRJobStep` which mrjob step (0-based) it
runs; set by :func:`expand`, absent for the first step. Not a Python name, so it never
clashes with a job's own options."""
UNSUPPORTED = (
    *("mapper_cmd", "combiner_cmd", "reducer_cmd", "mapper_raw"),
    *("mapper_pre_filter", "combiner_pre_filter", "reducer_pre_filter"),
)
"""``MRStep`` functions kubemr cannot run (they need Hadoop streaming or a shell)."""
_COUNTER_CHARS = re.compile(r"[^A-Za-z0-9_.-]")

Pair = tuple[Any, Any]


class MRJobError(ValueError):
    """An mrjob job kubemr cannot run as it is."""


def is_mrjob(target: object) -> bool:
    """Whether ``target`` is an ``MRJob`` subclass (without importing mrjob)."""
    return isinstance(target, type) and any(
        c.__module__ == "mrjob.job" and c.__name__ == "MRJob" for c in target.__mro__
    )


def command_line(args: Mapping[str, str]) -> list[str]:
    """``spec.app.args`` as an mrjob command line: ``--name value`` each, ``--name``
    alone for an empty value."""
    argv: list[str] = []
    for name, value in args.items():
        if name == STEP_ARG:
            continue
        argv.append(name if name.startswith("-") else f"--{name}")
        if value != "":
            argv.append(value)
    return argv


def instantiate(cls: type, args: Mapping[str, str]) -> Any:
    """The job, its options parsed from ``args``. Raises :class:`MRJobError`."""
    try:
        return cls(args=command_line(args))
    except (SystemExit, ValueError) as exc:  # how mrjob's option parser refuses
        reason = f"exit {exc.code}" if isinstance(exc, SystemExit) else str(exc)
        raise MRJobError(
            f"spec.app.args: {cls.__name__} rejected {command_line(args)}: {reason}"
        ) from None


def _mr_steps(job: Any) -> list[Any]:
    from mrjob.step import MRStep  # type: ignore[import-untyped]  # noqa: PLC0415 (optional)

    steps = list(job.steps())
    for number, step in enumerate(steps, 1):
        if not isinstance(step, MRStep):
            raise MRJobError(
                f"spec.app: step {number} of {type(job).__name__} is a "
                f"{type(step).__name__}; kubemr runs MRStep steps only"
            )
        used = [name for name in UNSUPPORTED if step[name] is not None]
        if used:
            raise MRJobError(
                f"spec.app: step {number} of {type(job).__name__} uses {', '.join(used)}, "
                "which kubemr does not run (no Hadoop streaming or shell commands)"
            )
    if not steps:
        raise MRJobError(f"spec.app: {type(job).__name__} has no steps")
    return steps


def expand(cls: type, step: StepSpec) -> list[StepSpec]:
    """The kubemr steps of the mrjob job ``cls`` that ``step`` names: one per MRStep,
    map-only where the MRStep has no reducer."""
    assert step.app is not None
    mr_steps = _mr_steps(instantiate(cls, step.app.args))
    expanded = []
    for index, mr_step in enumerate(mr_steps):
        args = dict(step.app.args)
        if len(mr_steps) > 1:
            args[STEP_ARG] = str(index)
        reduce_tasks = step.reduce_tasks if mr_step["reducer"] is not None else 0
        app = AppSpec(module=step.app.module, args=args)
        expanded.append(step.model_copy(update={"app": app, "reduce_tasks": reduce_tasks}))
    return expanded


def _listed(item: Any) -> Any:
    """A key as mrjob's JSON gives it: tuples (how kubemr carries lists in keys) as lists."""
    return [_listed(i) for i in item] if type(item) is tuple else item


def _tupled(item: Any) -> Any:
    """A key as kubemr carries it: lists as tuples."""
    return tuple(_tupled(i) for i in item) if type(item) is list else item


def counter_name(group: Any, counter: Any) -> str:
    """The kubemr counter an mrjob ``(group, counter)`` counts into."""
    name = _COUNTER_CHARS.sub("_", f"{group}.{counter}")
    return (name if name[:1].isalpha() else f"c{name}")[:64]


class MRJobStep:
    """One step of an mrjob job, as a kubemr app (see the module's docstring)."""

    def __init__(self, cls: type, args: Mapping[str, str], index: int) -> None:
        self.cls, self.args, self.index = cls, dict(args), index
        job = self._fresh()
        steps = _mr_steps(job)
        self.first = index == 0
        self.last = index == len(steps) - 1
        self.has_reducer = self.step["reducer"] is not None
        self.read = job.input_protocol().read
        internal = job.internal_protocol()
        self.internal_write, self.internal_read = internal.write, internal.read
        self.output_write = job.output_protocol().write
        self.sort_values = bool(job.sort_values())
        self.pending: list[Pair] = []
        if self.step["combiner"] is not None and not (
            self.step["combiner_init"] or self.step["combiner_final"]
        ):
            self.combine = self._combine

    def _fresh(self) -> Any:
        """A new instance of the job for a task, as each mrjob task process has its own
        (jobs keep per-task totals in attributes); its step's functions bound to it."""
        job = instantiate(self.cls, self.args)
        steps = _mr_steps(job)
        if not 0 <= self.index < len(steps):
            raise MRJobError(f"spec.app.args: {self.cls.__name__} has no step {self.index}")
        job.increment_counter = self.increment_counter
        job.set_status = lambda message: None
        self.job, self.step = job, steps[self.index]
        return job

    def increment_counter(self, group: Any, counter: Any, amount: int = 1) -> None:
        """mrjob's ``increment_counter``, onto the task's kubemr counters."""
        counters = getattr(self, "counters", None)
        if counters is not None:
            counters.increment(counter_name(group, counter), amount)

    def _passed(self, pairs: Iterable[Pair] | None, final: bool) -> Iterator[Pair]:
        """Pairs on their way out: the output protocol's lines (``final``), or through
        the internal protocol and back (keys as kubemr carries them)."""
        if final:
            for key, value in pairs or ():
                yield self.output_write(key, value).decode("utf-8", "surrogateescape"), None
            return
        for pair in pairs or ():
            key, value = self.internal_read(self.internal_write(*pair))
            yield _tupled(key), value

    def _hook(self, name: str) -> list[Pair]:
        hook: Callable[[], Iterable[Pair] | None] | None = self.step[name]
        return [] if hook is None else list(hook() or ())

    # ---- map ---------------------------------------------------------------------

    def map_setup(self) -> None:
        self._fresh()
        self.pending = self._hook("mapper_init")

    def map(self, key: Any, value: Any) -> Iterator[Pair]:
        final = self.last and not self.has_reducer
        if self.pending:
            pending, self.pending = self.pending, []
            yield from self._passed(pending, final)
        if self.first:
            key, value = self.read(value.encode("utf-8", "surrogateescape"))
        else:
            key = _listed(key)
        yield from self._passed(self.step["mapper"](key, value), final)

    def map_teardown(self) -> list[Pair]:
        pairs, self.pending = [*self.pending, *self._hook("mapper_final")], []
        return list(self._passed(pairs, self.last and not self.has_reducer))

    # ---- combine and reduce ----------------------------------------------------------

    def _values(self, key: Any, values: Iterable[Any]) -> Iterable[Any]:
        if not self.sort_values:
            return values
        return sorted(values, key=lambda value: self.internal_write(key, value))

    def _combine(self, key: Any, values: Iterator[Any]) -> Iterator[Pair]:
        key = _listed(key)
        yield from self._passed(self.step["combiner"](key, self._values(key, values)), False)

    def reduce_setup(self) -> None:
        self._fresh()
        self.pending = self._hook("reducer_init")

    def reduce(self, key: Any, values: Iterator[Any]) -> Iterator[Pair]:
        if self.pending:
            pending, self.pending = self.pending, []
            yield from self._passed(pending, self.last)
        key = _listed(key)
        yield from self._passed(self.step["reducer"](key, self._values(key, values)), self.last)

    def reduce_teardown(self) -> list[Pair]:
        pairs, self.pending = [*self.pending, *self._hook("reducer_final")], []
        return list(self._passed(pairs, self.last))


def adapt(cls: type, args: Mapping[str, str]) -> MRJobStep:
    """The app that runs the mrjob step ``args`` names (:data:`STEP_ARG`) of ``cls``."""
    try:
        index = int(args.get(STEP_ARG, "0"))
    except ValueError:
        raise MRJobError(f"spec.app.args: {STEP_ARG} must be a step number") from None
    return MRJobStep(cls, args, index)
