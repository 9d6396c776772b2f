"""The default test suite as ``make test`` runs it, ordered so a fresh machine waits less.

The kind tier's artefacts (``make kind-build``: the node image built from source, the
kubemr image) are the longest build of a fresh machine, about half an hour, and only the
kind tier needs them. So they build in the background at the lowest CPU priority
(``nice 19``) from the start, while the builds the default tier needs (MinIO, localkube)
run and then while the default tier itself runs: the background build takes only the CPU
those leave idle, so it does not slow them. The kind tier runs last, once its artefacts
are built. On a machine whose caches are warm the background build finds everything
cached within seconds and the order changes nothing.

The default tier runs as two pytest processes at once, its two lanes: the tests of the
local control plane (``cluster``: localkube's pods, the operator, the chart) and all the
others (the runtime's jobs, unit tests, benchmarks' smoke runs). Neither lane keeps the
two cores busy on its own (most of their time is spent waiting for pods, processes and
deadlines), and they share nothing but the machine: each session marks and checks its
own processes (tests/support/leftovers.py), and only the cluster lane starts localkube.
The local lane prints as it runs; the cluster lane writes to a log printed when it ends.

Every tier and lane runs even when another fails (CI shows every failure at once); the
exit code is the first non-zero one. ``PYTEST_ARGS`` holding its own ``-m`` selects the tests
itself: then one pytest run makes that selection after every build.

Usage (the Makefile's ``test`` target):
``python tests/support/suite.py --make MAKE --pytest PYTEST --log LOG -- [PYTEST_ARGS...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTHING_COLLECTED = 5
"""pytest's exit code when a selection holds no test."""
DEFAULT_TIER = "not slow and not kind"
"""The tests that need localkube and MinIO at most."""
LOCAL_LANE = f"not cluster and {DEFAULT_TIER}"
"""The default tier's lane without the local control plane (printed as it runs)."""
CLUSTER_LANE = f"cluster and {DEFAULT_TIER}"
"""The default tier's lane on the local control plane (logged, printed when it ends)."""
KIND_TIER = "kind and not slow"
"""The tests that need the kind cluster."""
BACKGROUND_NICENESS = 19
"""CPU priority of the background build: the lowest, so tests keep theirs."""
LOG_TAIL_LINES = 60
"""Lines of the background build's log shown when it fails."""


@dataclasses.dataclass(frozen=True)
class Tools:
    """The commands the suite runs (from the Makefile's variables)."""

    make: str
    """The make that runs this (``$(MAKE)``)."""
    pytest: str
    """The virtualenv's pytest."""
    log: Path
    """Where the background build writes (an ignored folder); the cluster lane's log
    goes beside it."""

    def lane_log(self) -> Path:
        return self.log.with_name("tests-cluster-lane.log")


class Background:
    """``make kind-build`` running niced in its own process group, logging to a file."""

    def __init__(self, tools: Tools) -> None:
        tools.log.parent.mkdir(parents=True, exist_ok=True)
        self.log = tools.log
        self.started = time.monotonic()
        with tools.log.open("wb") as log:
            self.process = subprocess.Popen(
                [tools.make, "--no-print-directory", "kind-build"],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: os.nice(BACKGROUND_NICENESS),  # noqa: PLW1509
            )

    def wait(self) -> int:
        """Wait for the build; print its log's tail if it failed; return its exit code."""
        code = self.process.wait()
        took = time.monotonic() - self.started
        say(f"kind-build (background) ended with {code} after {took:.0f} s; log: {self.log}")
        if code != 0:
            lines = self.log.read_text(errors="replace").splitlines()
            print("\n".join(lines[-LOG_TAIL_LINES:]), flush=True)
        return code

    def stop(self) -> None:
        """Stop the build and everything it started, if it still runs."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


STARTED = time.monotonic()


def say(message: str) -> None:
    """A line of the suite's own, stamped with the wall clock and the seconds since it
    started (what a CI log needs to say where the time went)."""
    stamp = time.strftime("%H:%M:%S")
    print(f"==== suite {stamp} +{time.monotonic() - STARTED:.0f} s: {message}", flush=True)


def run(command: Sequence[str]) -> int:
    say(shlex.join(command))
    started = time.monotonic()
    code = subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
    say(f"exit {code} after {time.monotonic() - started:.0f} s: {shlex.join(command[:3])} ...")
    return code


def selects_itself(pytest_args: Sequence[str]) -> bool:
    """True when the caller's pytest arguments carry their own marker selection."""
    return any(arg == "-m" or (arg.startswith("-m") and len(arg) > 2) for arg in pytest_args)


def tier(tools: Tools, marker: str, pytest_args: Sequence[str]) -> int:
    """One tier; narrowing arguments (a path, ``-k``) may leave a tier empty, which is no
    failure then (without arguments, an empty tier is one)."""
    code = run([tools.pytest, "--durations=25", "-m", marker, *pytest_args])
    return _verdict(code, pytest_args)


def _verdict(code: int, pytest_args: Sequence[str]) -> int:
    return 0 if code == NOTHING_COLLECTED and pytest_args else code


def default_tier(tools: Tools, pytest_args: Sequence[str]) -> int:
    """The two lanes of the default tier at once: the cluster lane in the background,
    logged; the local lane in the foreground. Returns the first failure's code."""
    command = [tools.pytest, "--durations=25", "-m", CLUSTER_LANE, *pytest_args]
    log = tools.lane_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{shlex.join(command)} (the cluster lane, beside the local one; log: {log})")
    started = time.monotonic()
    with log.open("wb") as sink:
        lane = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        local = tier(tools, LOCAL_LANE, pytest_args)
    except BaseException:  # Ctrl-C: stop the other lane too
        lane.terminate()
        lane.wait()
        raise
    if lane.poll() is None:
        say("waiting for the cluster lane")
    cluster = lane.wait()
    say(f"exit {cluster} after {time.monotonic() - started:.0f} s: the cluster lane; its log:")
    print(log.read_text(errors="replace"), end="", flush=True)
    return local or _verdict(cluster, pytest_args)


def main(tools: Tools, pytest_args: Sequence[str]) -> int:
    background = Background(tools)
    try:
        code = run([tools.make, "--no-print-directory", "s3-server", "cluster-build"])
        if code != 0:
            return code
        if selects_itself(pytest_args):
            code = background.wait()
            return code or run([tools.pytest, "--durations=25", *pytest_args])
        first = default_tier(tools, pytest_args)
        built = background.wait()
        if built != 0:
            return first or built
        second = tier(tools, KIND_TIER, pytest_args)
        return first or second
    finally:
        background.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--make", required=True, help="the make to run targets with")
    parser.add_argument("--pytest", required=True, help="the virtualenv's pytest")
    parser.add_argument("--log", required=True, type=Path, help="the background build's log")
    parser.add_argument("pytest_args", nargs="*", help="passed to every pytest run")
    options = parser.parse_args()
    made = Tools(make=options.make, pytest=options.pytest, log=options.log)
    sys.exit(main(made, options.pytest_args))
