"""Named, overridable deadlines and the one polling loop every wait uses.

A wait never sleeps and then asserts: it polls a probe until the probe returns a
value or the named deadline passes, and then fails with the name, the budget and
the last thing the probe saw. Any deadline can be overridden from the environment
as ``LOCALKUBE_DEADLINE_<NAME>`` (seconds), e.g. ``LOCALKUBE_DEADLINE_POD_PHASE=120``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceededError(AssertionError):
    """A polled condition did not hold before its named deadline."""


@dataclasses.dataclass(frozen=True)
class Deadline:
    """A named time budget; ``seconds`` may be overridden from the environment."""

    name: str
    """Short identifier, also used for the environment override."""
    default: float
    """Budget in seconds when no override is set."""

    @property
    def seconds(self) -> float:
        override = os.environ.get(f"LOCALKUBE_DEADLINE_{self.name.upper()}")
        return float(override) if override else self.default


ETCD_READY = Deadline("etcd_ready", 30.0)
APISERVER_READY = Deadline("apiserver_ready", 90.0)
COMPONENT_READY = Deadline("component_ready", 60.0)
NODE_READY = Deadline("node_ready", 60.0)
AGENT_READY = Deadline("agent_ready", 30.0)
POD_PHASE = Deadline("pod_phase", 60.0)
OBJECT_GONE = Deadline("object_gone", 60.0)
NAMESPACE_READY = Deadline("namespace_ready", 30.0)
PROCESS_EXIT = Deadline("process_exit", 30.0)
BUILD = Deadline("build", 3600.0)


def poll(
    deadline: Deadline,
    probe: Callable[[], T | None],
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None; return that.

    Exceptions from the probe count as "not yet" and the last one is reported.
    ``what`` says in words what is awaited; ``describe`` may add the current state
    to the failure message.
    """
    budget = deadline.seconds
    end = time.monotonic() + budget
    last: str = "never probed"
    while True:
        try:
            result = probe()
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if result is not None:
                return result
            last = "condition not met"
        if time.monotonic() >= end:
            state = f"; state: {describe()}" if describe is not None else ""
            raise DeadlineExceededError(
                f"deadline {deadline.name} ({budget:g} s) passed waiting for {what}; "
                f"last: {last}{state}"
            )
        time.sleep(interval)
