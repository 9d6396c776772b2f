"""What kopf's namespace and CRD observers miss at start-up, and the patch that closes it.

kopf (1.45) learns which namespaces and resources exist in two steps: an observer lists
them once, then starts a watch-stream, which lists them *again* to get a resource
version and hands that second listing on as events of type ``None``. Both observers drop
those events (``process_discovered_namespace_event`` and
``process_discovered_resource_event`` return early on ``type is None``). A namespace (or
CRD) created between the two listings is therefore in neither view: it is not in the
first listing, and it never arrives as ``ADDED`` because the watch starts after it. kopf
then never watches MapReduceJobs there, silently, until it restarts.

That is how a job applied while the operator was starting stayed without a phase, pod
or event for minutes (tests/operator/test_startup.py creates the namespace exactly when
kopf logs the start of its namespace watch-stream; before this patch about one round in
three was never reconciled).

:func:`install` makes both observers take the second listing into account:

* namespaces: a listed namespace is revised like an added one (revising is idempotent:
  a namespace already known stays known, a terminating one is dropped as kopf would);
* CRDs: a listed CRD of a group this operator serves whose resource kopf does not know
  yet triggers kopf's own rescan of that group, as an ``ADDED`` event would. Other CRDs
  (a cluster may have hundreds) cost nothing.

It wraps kopf's functions rather than copying them, and refuses to run (raises at
start-up) if the kopf it finds no longer has them, so that a kopf upgrade that moves
them fails loudly instead of bringing the race back silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from kopf._core.reactor import observation

Processor = Callable[..., Awaitable[None]]

_PATCHED = "__kubemr_sees_listings__"


def install(served_groups: Collection[str]) -> None:
    """Patch kopf's observers (once per process) to use their watch-streams' listings."""
    namespaces = _original(observation, "process_discovered_namespace_event")
    resources = _original(observation, "process_discovered_resource_event")
    if getattr(namespaces, _PATCHED, False):
        return
    groups = frozenset(served_groups)

    async def namespace_event(*, raw_event: Any, **kwargs: Any) -> None:
        if raw_event["type"] is None:
            raw_event = {"type": "ADDED", "object": raw_event["object"]}
        await namespaces(raw_event=raw_event, **kwargs)

    async def resource_event(*, raw_event: Any, insights: Any, **kwargs: Any) -> None:
        if raw_event["type"] is None:
            if not _unknown_served(raw_event["object"], insights, groups):
                return
            raw_event = {"type": "ADDED", "object": raw_event["object"]}
        await resources(raw_event=raw_event, insights=insights, **kwargs)

    setattr(namespace_event, _PATCHED, True)
    setattr(resource_event, _PATCHED, True)
    observation.process_discovered_namespace_event = namespace_event
    observation.process_discovered_resource_event = resource_event


def _unknown_served(crd: Any, insights: Any, groups: frozenset[str]) -> bool:
    """Whether a listed CRD belongs to a served group and kopf does not watch it yet."""
    spec = crd.get("spec", {})
    group, plural = spec.get("group"), spec.get("names", {}).get("plural")
    if group not in groups:
        return False
    return not any(r.group == group and r.plural == plural for r in insights.watched_resources)


def _original(module: Any, name: str) -> Processor:
    function = getattr(module, name, None)
    if not callable(function):
        raise RuntimeError(
            f"kopf.{module.__name__}.{name} is gone: this kopf is not one whose start-up "
            "race kubemr_operator.discovery knows how to close (pin kopf to a known version)"
        )
    return function  # type: ignore[no-any-return]
