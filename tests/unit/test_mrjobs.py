"""The mrjob adapter's pure parts: options, counter names, and how an mrjob job's steps
become kubemr steps (mrjob's own example jobs, unmodified)."""

from __future__ import annotations

from typing import Any

import pytest
from kubemr import apps, mrjobs, spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # mrjob imports pipes
pytest.importorskip("mrjob", reason="the kubemr[mrjob] extra is not installed")


def test_args_become_the_jobs_command_line() -> None:
    args = {"stop-words-file": "/s.txt", "verbose": "", mrjobs.STEP_ARG: "1"}
    assert mrjobs.command_line(args) == ["--stop-words-file", "/s.txt", "--verbose"]


@pytest.mark.parametrize(
    ("group", "counter", "name"),
    [
        ("words", "short", "words.short"),
        ("bad input", "lines, all", "bad_input.lines__all"),
        ("1st", "x", "c1st.x"),
    ],
)
def test_counter_names_fit_kubemrs(group: str, counter: str, name: str) -> None:
    assert mrjobs.counter_name(group, counter) == name
    assert apps.COUNTER_NAME.match(name)


def test_a_two_step_job_becomes_two_steps() -> None:
    app = spec.AppSpec(module="mrjob.examples.mr_most_used_word:MRMostUsedWord")
    first, second = mrjobs.expand(
        apps.target_of(app),
        spec.StepSpec(app=app, reduce_tasks=4),  # type: ignore[arg-type]
    )
    assert (first.reduce_tasks, second.reduce_tasks) == (4, 4)
    assert [s.app.args[mrjobs.STEP_ARG] for s in (first, second) if s.app] == ["0", "1"]
    adapted = apps.load_app(first.app)  # type: ignore[arg-type]
    assert apps.has_combiner(adapted)  # the MRStep's combiner
    assert not apps.has_combiner(apps.load_app(second.app))  # type: ignore[arg-type]


def test_a_job_of_shell_commands_is_refused() -> None:
    app = spec.AppSpec(module="mrjob.examples.mr_grep:MRGrepJob", args={"expression": "x"})
    with pytest.raises(apps.AppError, match="uses mapper_cmd, which kubemr does not run"):
        apps.load_app(app)


def test_a_rejected_option_names_spec_app_args() -> None:
    app = spec.AppSpec(module="mrjob.examples.mr_grep:MRGrepJob")  # --expression is required
    rejected = r"spec.app.args: MRGrepJob rejected \[\]: .*required: -e/--expression"
    with pytest.raises(apps.AppError, match=rejected):
        apps.load_app(app)


def test_the_first_step_reads_lines_with_the_input_protocol() -> None:
    app = spec.AppSpec(module="mrjob.examples.mr_word_freq_count:MRWordFreqCount")
    adapted = apps.load_app(app)
    assert apps.call_hook(adapted, "map_setup") == []
    assert list(adapted.map("file.txt", "A cat, a dog")) == [
        ("a", 1),
        ("cat", 1),
        ("a", 1),
        ("dog", 1),
    ]
    # a one-step job's reducer writes the output protocol's lines
    assert list(adapted.reduce("a", iter([1, 1]))) == [('"a"\t2', None)]


def counting_job() -> type:
    from mrjob.job import MRJob  # noqa: PLC0415 (the optional extra)

    class Counting(MRJob):  # type: ignore[misc]
        def configure_args(self) -> None:
            super().configure_args()
            self.add_passthru_arg("--times", type=int, default=1)

        def mapper(self, _: None, line: str) -> Any:
            self.increment_counter("lines seen", "all, really")
            yield line, self.options.times

    return Counting


def test_counters_and_passthrough_options_reach_the_job() -> None:
    adapted = mrjobs.adapt(counting_job(), {"times": "3"})
    counters = apps.start_task(adapted)  # type: ignore[arg-type]
    apps.call_hook(adapted, "map_setup")  # type: ignore[arg-type]
    # a map-only job: its mapper writes the output protocol's lines
    assert list(adapted.map("f.txt", "x")) == [('"x"\t3', None)]
    assert list(adapted.map("f.txt", "y")) == [('"y"\t3', None)]
    assert counters.values == {"lines_seen.all__really": 2}
