"""The order `make test` runs things in (tests/support/suite.py), driven with stand-in make
and pytest scripts that record what they were asked and when."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import suite


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def tools(
    tmp_path: Path,
    journal: Path,
    build: str = "exit 0",
    tier: str = "exit 0",
    foreground: str = "exit 0",
    lanes_first: int = 0,
) -> suite.Tools:
    """make: `kind-build` records its niceness, waits (at most 10 s) until ``lanes_first``
    pytest runs are recorded, records its end, then runs ``build``; other targets are
    recorded, then run ``foreground``. pytest: records its arguments, then runs ``tier``
    (with $MARK, the -m)."""
    make = script(
        tmp_path / "make",
        f"""
if [ "$2" = kind-build ]; then
  echo "kind-build started nice=$(ps -o ni= -p $$ | tr -d ' ')" >> {journal}
  for _ in $(seq 200); do
    [ "$(grep -c '^pytest' {journal})" -ge {lanes_first} ] && break
    sleep 0.05
  done
  echo "kind-build ended" >> {journal}
  {build}
fi
echo "make $*" >> {journal}
{foreground}
""",
    )
    pytest_ = script(
        tmp_path / "pytest",
        f"""
echo "pytest $*" >> {journal}
MARK="$3"
{tier}
""",
    )
    return suite.Tools(make=make, pytest=pytest_, log=tmp_path / "log" / "kind-build.log")


def lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines()


def test_the_kind_build_runs_niced_beside_the_default_tier_and_before_the_kind_tier(
    tmp_path: Path, journal: Path
) -> None:
    assert suite.main(tools(tmp_path, journal, lanes_first=2), []) == 0
    seen = lines(journal)
    started = next(i for i, line in enumerate(seen) if line.startswith("kind-build started"))
    assert seen[started] == f"kind-build started nice={suite.BACKGROUND_NICENESS}"
    kind = seen.index(f"pytest --durations=25 -m {suite.KIND_TIER}")
    for lane in (suite.LOCAL_LANE, suite.CLUSTER_LANE):
        default = seen.index(f"pytest --durations=25 -m {lane}")
        assert seen.index("make --no-print-directory s3-server cluster-build") < default
        assert default < seen.index("kind-build ended") < kind


def test_the_default_tiers_two_lanes_run_at_once_and_cover_it(
    tmp_path: Path, journal: Path
) -> None:
    """Each lane's stand-in leaves a mark and waits for the other's: run one after the
    other, the first would wait in vain and fail."""
    meet = (
        'case "$MARK" in "kind"*) exit 0;; "cluster"*) me=cluster; other=local;; '
        "*) me=local; other=cluster;; esac; "
        f"touch {tmp_path}/$me; "
        f"for _ in $(seq 100); do [ -e {tmp_path}/$other ] && exit 0; sleep 0.1; done; exit 9"
    )
    assert suite.main(tools(tmp_path, journal, tier=meet), []) == 0
    # whatever a test's markers, it is in the default tier iff it is in exactly one lane
    names = ("cluster", "slow", "kind", "bench")
    for marks in itertools.product((False, True), repeat=len(names)):
        held = {name for name, mark in zip(names, marks, strict=True) if mark}

        def selects(expression: str, held: set[str] = held) -> bool:
            return Expression.compile(expression).evaluate(held.__contains__)

        lanes = selects(suite.LOCAL_LANE) + selects(suite.CLUSTER_LANE)
        assert lanes == (1 if selects(suite.DEFAULT_TIER) else 0), held


def test_a_failed_cluster_lane_fails_the_suite_and_its_log_is_shown(
    tmp_path: Path, journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = 'case "$MARK" in "cluster"*) echo "FAILED test_jobs.py::test_x"; exit 1;; esac'
    assert suite.main(tools(tmp_path, journal, tier=failing), []) == 1
    seen = lines(journal)
    assert f"pytest --durations=25 -m {suite.LOCAL_LANE}" in seen
    assert f"pytest --durations=25 -m {suite.KIND_TIER}" in seen
    assert "FAILED test_jobs.py::test_x" in capsys.readouterr().out


def test_a_failed_default_tier_still_runs_the_kind_tier_and_fails_the_suite(
    tmp_path: Path, journal: Path
) -> None:
    failing = 'case "$MARK" in *"not kind"*) exit 1;; esac; exit 0'
    assert suite.main(tools(tmp_path, journal, tier=failing), []) == 1
    assert f"pytest --durations=25 -m {suite.KIND_TIER}" in lines(journal)


def test_a_failed_kind_build_skips_no_test_silently_it_fails_the_suite(
    tmp_path: Path, journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tools(tmp_path, journal, build="echo 'node image: go build failed'; exit 2")
    assert suite.main(made, []) == 2
    assert not any(line.endswith(suite.KIND_TIER) for line in lines(journal))
    assert "node image: go build failed" in capsys.readouterr().out


def test_a_failed_foreground_build_stops_the_background_one(tmp_path: Path, journal: Path) -> None:
    # (no lane ever runs: the build would end after its 10 s wait, had it not been stopped)
    made = tools(tmp_path, journal, build="sleep 30", foreground="exit 3", lanes_first=2)
    assert suite.main(made, []) == 3
    seen = lines(journal)
    assert "kind-build ended" not in seen
    assert not any(line.startswith("pytest") for line in seen)


def test_an_empty_tier_fails_without_arguments_and_passes_when_arguments_narrowed_it(
    tmp_path: Path, journal: Path
) -> None:
    made = tools(tmp_path, journal, tier=f"exit {suite.NOTHING_COLLECTED}")
    assert suite.main(made, []) == suite.NOTHING_COLLECTED
    assert suite.main(made, ["tests/unit"]) == 0


def test_arguments_with_their_own_marker_run_one_selection_after_every_build(
    tmp_path: Path, journal: Path
) -> None:
    assert suite.main(tools(tmp_path, journal), ["-m", "not slow and not kind"]) == 0
    seen = lines(journal)
    assert [line for line in seen if line.startswith("pytest")] == [
        "pytest --durations=25 -m not slow and not kind"
    ]
    assert seen.index("kind-build ended") < seen.index(seen[-1])
    assert suite.selects_itself(["-mkind"]) and not suite.selects_itself(["-k", "m"])
